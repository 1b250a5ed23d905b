// Only rescales the icicle and filters tables: the page reads without it.
(function () {
  document.documentElement.classList.add("has-js");
  var W = 1000, CH = 6.5;
  function fit(name, w) {
    var n = Math.floor((w - 6) / CH);
    if (n < 3) return "";
    return name.length <= n ? name : name.slice(0, n - 1) + "\u2026";
  }
  var svg = document.getElementById("icicle");
  if (svg) {
    var nodes = Array.prototype.slice.call(svg.querySelectorAll("g.node"));
    var crumb = document.getElementById("icicle-focus");
    function zoom(x0, w0, d0, path) {
      nodes.forEach(function (g) {
        var x = +g.dataset.x, w = +g.dataset.w, d = +g.dataset.depth;
        var nx = (x - x0) * W / w0, nw = w * W / w0;
        if (d < d0) { nx = 0; nw = W; }
        var visible = nx < W && nx + nw > 0 && nw > 0.05;
        g.style.display = visible ? "" : "none";
        if (!visible) return;
        var scale = nw / (w || 1);
        Array.prototype.forEach.call(g.querySelectorAll("rect.seg"), function (r) {
          if (r.x0 === undefined) { r.x0 = +r.getAttribute("x"); r.w0 = +r.getAttribute("width"); }
          r.setAttribute("x", nx + (r.x0 - x) * scale);
          r.setAttribute("width", Math.max(0, r.w0 * scale));
        });
        var f = g.querySelector("rect.frame");
        f.setAttribute("x", nx); f.setAttribute("width", nw);
        var t = g.querySelector("text");
        if (t) { t.setAttribute("x", Math.max(nx, 0) + 3); t.textContent = fit(g.dataset.name, Math.min(nw, W)); }
      });
      if (crumb) crumb.textContent = path;
    }
    function focus(g) {
      zoom(+g.dataset.x, +g.dataset.w || 1, +g.dataset.depth, g.dataset.path);
    }
    nodes.forEach(function (g) {
      g.addEventListener("click", function () {
        focus(g);
        history.replaceState(null, "", "#dir=" + encodeURIComponent(g.dataset.path));
      });
    });
    var reset = document.getElementById("icicle-reset");
    if (reset) reset.addEventListener("click", function () {
      zoom(0, W, 0, "/");
      history.replaceState(null, "", "#");
    });
    // A link to a directory: page.html#dir=/usr/lib opens zoomed into it.
    if (location.hash.indexOf("#dir=") === 0) {
      var want = decodeURIComponent(location.hash.slice(5));
      nodes.forEach(function (g) { if (g.dataset.path === want) focus(g); });
    }
  }
  Array.prototype.forEach.call(document.querySelectorAll("input[data-filter]"), function (input) {
    var rows = document.querySelectorAll("#" + input.dataset.filter + " tbody tr");
    var count = document.getElementById(input.dataset.filter + "-count");
    input.addEventListener("input", function () {
      var q = input.value.toLowerCase(), n = 0;
      Array.prototype.forEach.call(rows, function (tr) {
        var hit = !q || tr.textContent.toLowerCase().indexOf(q) >= 0;
        tr.style.display = hit ? "" : "none";
        if (hit) n++;
      });
      if (count) count.textContent = n + " of " + rows.length + " shown";
    });
  });
})();
