//! The progress display: a spinner per phase on a terminal, plain lines
//! otherwise.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::api::types::Progress;

pub(super) struct Display {
    bar: Option<ProgressBar>,
    tty: bool,
}

impl Display {
    pub fn new(tty: bool) -> Self {
        Self { bar: None, tty }
    }

    pub fn message(&mut self, m: &str) {
        match &self.bar {
            Some(b) => b.println(m),
            None => eprintln!("{m}"),
        }
    }

    pub fn show(&mut self, p: &Progress) {
        match p {
            Progress::PhaseStarted { phase } => {
                if self.tty {
                    let b = ProgressBar::new_spinner();
                    b.set_style(
                        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    b.set_message(format!("{:<9}", phase.name()));
                    b.enable_steady_tick(Duration::from_millis(120));
                    self.bar = Some(b);
                } else {
                    eprintln!("[{}] started", phase.name());
                }
            }
            Progress::PhaseDone { phase, ms, detail } => {
                let line = format!(
                    "{} {:<9} {:>7}  {}",
                    if self.tty { "✔" } else { "[done]" },
                    phase.name(),
                    fmt_ms(*ms),
                    detail.as_deref().unwrap_or("")
                );
                if let Some(b) = self.bar.take() {
                    b.finish_with_message(String::new());
                }
                if self.tty {
                    // Replace the spinner line.
                    eprint!("\r\x1b[2K");
                }
                eprintln!("{line}");
            }
            Progress::PhaseSkipped { phase, why } => self.message(&format!(
                "{} {:<9} skipped: {why}",
                if self.tty { "-" } else { "[skip]" },
                phase.name()
            )),
            Progress::Note { message } => self.message(&format!("  note: {message}")),
            Progress::Warning { message } => self.message(&format!("  WARNING: {message}")),
            _ => {}
        }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

fn fmt_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}
