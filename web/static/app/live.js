// The dashboard's live view: calls in progress pushed by /ws/live.
(function () {
  "use strict";
  var table = document.getElementById("live");
  if (!table) return;
  var body = table.tBodies[0];
  var empty = document.getElementById("live-empty");
  var state = document.getElementById("live-state");
  var labels = JSON.parse(table.dataset.labels || "{}");
  var zone = undefined;

  function cell(row, text, cls) {
    var td = row.insertCell();
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    return td;
  }

  function render(calls) {
    while (body.rows.length) body.deleteRow(0);
    calls.forEach(function (c) {
      var row = body.insertRow();
      row.dataset.callId = c.call_id;
      cell(row, new Date(c.started_at).toLocaleTimeString("zh-CN", { hour12: false, timeZone: zone }), "num");
      cell(row, c.caller, "num");
      cell(row, c.caller_region);
      cell(row, c.hotline, "num");
      cell(row, c.answered_by);
      var span = document.createElement("span");
      span.className = "status status-" + c.status;
      span.textContent = labels[c.status] || c.status;
      row.insertCell().appendChild(span);
    });
    empty.hidden = calls.length > 0;
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(scheme + location.host + "/ws/live");
    ws.onopen = function () { state.textContent = state.dataset.connected; };
    ws.onmessage = function (event) { render(JSON.parse(event.data).calls); };
    ws.onclose = function () {
      state.textContent = state.dataset.disconnected;
      setTimeout(connect, 2000);
    };
  }
  connect();
})();
