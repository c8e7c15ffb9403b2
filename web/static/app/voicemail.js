// The voicemail inbox: playing a message marks it heard.
(function () {
  "use strict";
  var csrf = document.querySelector("meta[name=csrf-token]").content;
  document.querySelectorAll("audio[data-heard-url]").forEach(function (audio) {
    audio.addEventListener("play", function () {
      if (audio.hasAttribute("data-heard")) return;
      fetch(audio.dataset.heardUrl, {
        method: "PATCH",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ heard: true }),
        credentials: "same-origin",
      }).then(function (response) {
        if (!response.ok) return;
        audio.setAttribute("data-heard", "");
        var badge = audio.closest("tr").querySelector("[data-state]");
        badge.textContent = badge.dataset.heardLabel;
        badge.classList.remove("status-talking");
      });
    });
  });
})();
