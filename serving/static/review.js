// Keyboard shortcuts for the queue: j / k move between cases, Enter opens the current one.
// Everything also works without this script (links and forms are plain HTML).
(function () {
  "use strict";
  var links = Array.prototype.slice.call(document.querySelectorAll("a.case-link"));
  if (!links.length) {
    return;
  }
  var current = -1;

  function select(index) {
    if (current >= 0) {
      links[current].closest("tr").classList.remove("current");
    }
    current = Math.max(0, Math.min(links.length - 1, index));
    links[current].closest("tr").classList.add("current");
    links[current].focus();
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target.matches("input, textarea, select") || target.isContentEditable;
    if (typing || event.altKey || event.ctrlKey || event.metaKey) {
      return;
    }
    if (event.key === "j") {
      select(current + 1);
      event.preventDefault();
    } else if (event.key === "k") {
      select(current - 1);
      event.preventDefault();
    }
  });
})();
