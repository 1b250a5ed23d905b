//! `compose.slim.yml`: the override file that swaps the slim images in
//! (`docker-compose -f compose.yml -f compose.slim.yml up`).

use std::collections::BTreeMap;

use serde::Serialize;

/// The name the client writes it under, beside the Compose file.
pub const FILE_NAME: &str = "compose.slim.yml";

#[derive(Serialize)]
struct Override<'a> {
    services: BTreeMap<&'a str, ServiceImage<'a>>,
}

#[derive(Serialize)]
struct ServiceImage<'a> {
    image: &'a str,
}

/// The override's text for `(service, slim image)` pairs.
pub fn render(source_file: &str, images: &[(String, String)]) -> String {
    let doc = Override {
        services: images
            .iter()
            .map(|(s, i)| (s.as_str(), ServiceImage { image: i }))
            .collect(),
    };
    let yaml = serde_norway::to_string(&doc).expect("plain strings serialize");
    format!(
        "# Written by slim build --compose {source_file}: the slim images of its services.\n# Use: docker-compose -f {source_file} -f {FILE_NAME} up\n{yaml}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_services_image_override() {
        let text = render(
            "compose.yml",
            &[
                ("web".into(), "shop-web.slim:1".into()),
                ("db".into(), "shop-db.slim:latest".into()),
            ],
        );
        let v: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(
            v["services"]["web"]["image"].as_str(),
            Some("shop-web.slim:1")
        );
        assert_eq!(
            v["services"]["db"]["image"].as_str(),
            Some("shop-db.slim:latest")
        );
        assert!(text.starts_with("# Written by slim build --compose compose.yml"));
    }
}
