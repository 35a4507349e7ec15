/* exgate dashboard: draws the throughput chart (uPlot, served locally) from #throughput-data. */
(function () {
  "use strict";
  var holder = document.getElementById("throughput-chart");
  var source = document.getElementById("throughput-data");
  if (!holder || !source || typeof uPlot === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);

  function size() {
    return { width: Math.max(320, holder.clientWidth), height: 260 };
  }

  function fromZero(u, min, max) {
    return [0, Math.max(1, Math.ceil(max * 1.1))];
  }

  var zone = "Asia/Shanghai";
  var counts = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000];
  var failed = data.failed.map(function (n) { return n > 0 ? n : null; });

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function at(ts) { return uPlot.tzDate(new Date(ts * 1e3), zone); }

  function hourLabels(u, splits) {
    return splits.map(function (ts) {
      var d = at(ts);
      return d.getHours() === 0 ? (d.getMonth() + 1) + "/" + d.getDate()
        : pad(d.getHours()) + ":00";
    });
  }

  function hourValue(u, ts) {
    if (ts == null) { return "—"; }
    var d = at(ts);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":00";
  }

  var box = size();
  var opts = {
    width: box.width,
    height: box.height,
    tzDate: function (ts) { return at(ts); },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: fromZero }, f: { range: fromZero } },
    series: [
      { label: data.labels.time, value: hourValue },
      {
        label: data.labels.records, scale: "y", stroke: "#2563eb", width: 1,
        fill: "rgba(37, 99, 235, 0.35)", paths: uPlot.paths.bars({ size: [0.7, 48] }),
        points: { show: false }
      },
      {
        label: data.labels.failed, scale: "f", stroke: "#dc2626", width: 0,
        paths: function () { return null; },
        points: { show: true, size: 9, width: 2, fill: "#fee2e2", stroke: "#dc2626" }
      }
    ],
    axes: [
      { stroke: "#475569", grid: { stroke: "#e2e8f0" }, ticks: { stroke: "#cbd5e1" },
        values: hourLabels, space: 50 },
      { scale: "y", stroke: "#475569", grid: { stroke: "#e2e8f0" }, ticks: { stroke: "#cbd5e1" },
        incrs: counts },
      { scale: "f", side: 1, stroke: "#dc2626", grid: { show: false }, ticks: { show: false },
        incrs: counts }
    ]
  };
  var plot = new uPlot(opts, [data.t, data.records, failed], holder);
  holder.setAttribute("data-drawn", "1");
  window.addEventListener("resize", function () { plot.setSize(size()); });
})();
