// Load a chosen .toml file into the site file's text area (no upload yet).
(function () {
  "use strict";
  document.querySelectorAll("input[data-load-into]").forEach(function (input) {
    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      if (!file) return;
      file.text().then(function (text) {
        document.getElementById(input.dataset.loadInto).value = text;
      });
    });
  });
})();
