// The report's charts, drawn by ECharts (installed from npm, served from
// /static/vendor) from the JSON the page carries.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var L = data.labels;
  var COLORS = { answered: "#2da44e", busy: "#cf222e", no_answer: "#bf8700", other: "#8c959f",
                 calls: "#0b6bcb" };

  function bars(name, values, color, stack) {
    return { name: name, type: "bar", stack: stack, data: values, itemStyle: { color: color } };
  }

  var options = {
    day: {
      tooltip: { trigger: "axis" },
      legend: {},
      xAxis: { type: "category", data: data.days },
      yAxis: { type: "value", minInterval: 1 },
      series: [
        bars(L.answered, data.day_answered, COLORS.answered, "calls"),
        bars(L.busy, data.day_busy, COLORS.busy, "calls"),
        bars(L.no_answer, data.day_no_answer, COLORS.no_answer, "calls"),
        bars(L.other, data.day_other, COLORS.other, "calls"),
      ],
    },
    hour: {
      tooltip: { trigger: "axis" },
      legend: {},
      xAxis: { type: "category", data: data.hour_calls.map(function (_, h) {
        return (h < 10 ? "0" : "") + h + ":00"; }) },
      yAxis: { type: "value", minInterval: 1 },
      series: [
        bars(L.calls, data.hour_calls, COLORS.calls),
        bars(L.answered, data.hour_answered, COLORS.answered),
      ],
    },
    split: {
      tooltip: { trigger: "item" },
      legend: {},
      series: [{
        type: "pie",
        radius: ["35%", "65%"],
        data: ["answered", "busy", "no_answer", "other"].map(function (k) {
          return { name: L[k], value: data.split[k], itemStyle: { color: COLORS[k] } };
        }),
      }],
    },
    region: {
      tooltip: { trigger: "axis" },
      legend: {},
      grid: { left: 100 },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", inverse: true,
               data: data.regions.map(function (r) { return r || L.unknown; }) },
      series: [
        bars(L.calls, data.region_calls, COLORS.calls),
        bars(L.answered, data.region_answered, COLORS.answered),
      ],
    },
    agent: {
      tooltip: { trigger: "axis" },
      legend: {},
      xAxis: { type: "category", data: data.agents },
      yAxis: [{ type: "value", minInterval: 1 }, { type: "value" }],
      series: [
        bars(L.answered, data.agent_answered, COLORS.answered),
        { name: L.talk_minutes, type: "line", yAxisIndex: 1, data: data.agent_talk_minutes },
      ],
    },
  };

  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var chart = window.echarts.init(el, null, { renderer: "svg" });
    chart.on("finished", function () { el.setAttribute("data-rendered", ""); });
    chart.setOption(options[el.dataset.chart]);
    window.addEventListener("resize", function () { chart.resize(); });
  });
})();
