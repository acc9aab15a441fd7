/* Draws the time charts of a page with uPlot (loaded before this script). Each element with a data-chart
   attribute names the JSON data island (a script element of type application/json) holding its data:
   {"zone": IANA zone, "x": [unix seconds], "series": [{"label": "...", "values": [...]}]}.
   Times are shown in the data's zone, not the reader's. Without this script (or script at all) the tables beside
   the charts hold the same numbers. It fetches nothing and writes no style attributes (the report's policy
   refuses them): only uPlot's canvas and the element's own children. */
(function () {
  "use strict";
  var COLOURS = ["#1a4f8b", "#d9822b", "#2e7d32", "#8e44ad"];
  var HEIGHT = 260;
  var drawn = [];

  function draw(element) {
    var island = document.getElementById(element.getAttribute("data-chart"));
    if (!island || typeof uPlot === "undefined") {
      return;
    }
    var data = JSON.parse(island.textContent);
    var series = [{}].concat(data.series.map(function (s, i) {
      var colour = COLOURS[i % COLOURS.length];
      return { label: s.label, stroke: colour, width: 2, points: { show: false } };
    }));
    var options = {
      width: element.clientWidth || 600,
      height: HEIGHT,
      tzDate: function (seconds) { return uPlot.tzDate(new Date(seconds * 1000), data.zone); },
      scales: { x: { time: true } },
      series: series,
    };
    var columns = [data.x].concat(data.series.map(function (s) { return s.values; }));
    drawn.push({ element: element, plot: new uPlot(options, columns, element) });
  }

  document.querySelectorAll("[data-chart]").forEach(draw);
  window.addEventListener("resize", function () {
    drawn.forEach(function (chart) {
      chart.plot.setSize({ width: chart.element.clientWidth || 600, height: HEIGHT });
    });
  });
})();
