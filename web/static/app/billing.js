// The year's daily costs as a calendar (ECharts from /static/vendor).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("billing-data").textContent);
  var el = document.getElementById("chart-daily");
  var costs = data.days.map(function (d) { return [d[0], Number(d[1]), d[2]]; });
  var max = costs.reduce(function (m, d) { return Math.max(m, d[1]); }, 0) || 1;
  var chart = window.echarts.init(el, null, { renderer: "svg" });
  chart.on("finished", function () { el.setAttribute("data-rendered", ""); });
  chart.setOption({
    tooltip: { formatter: function (p) { return p.value[0] + ": ¥" + p.value[1].toFixed(2) +
                                                 " (" + p.value[2] + ")"; } },
    visualMap: { min: 0, max: max, dimension: 1, show: false, inRange: { color: ["#dafbe1", "#116329"] } },
    calendar: { range: String(data.year), cellSize: ["auto", 14], top: 30, left: 40, right: 10 },
    series: [{ type: "heatmap", coordinateSystem: "calendar", data: costs }],
  });
  window.addEventListener("resize", function () { chart.resize(); });
})();
