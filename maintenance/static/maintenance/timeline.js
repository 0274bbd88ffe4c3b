// Places the 30-day timeline's days, bars and marks. The page gives each its position as
// data-left / data-width (percent of the period); this sets them through element.style,
// which the Content-Security-Policy allows where it refuses style="" attributes. Until it
// has run, or without JavaScript, calendar.css shows each row's items as a plain list with
// their full descriptions.
(function () {
  "use strict";
  var table = document.querySelector("table.tl");
  if (!table) return;
  var day = table.getAttribute("data-day-width");
  if (day) table.style.setProperty("--day", day + "%");
  Array.prototype.forEach.call(table.querySelectorAll("[data-left]"), function (item) {
    item.style.left = item.getAttribute("data-left") + "%";
    var width = item.getAttribute("data-width");
    if (width !== null) item.style.width = width + "%";
  });
  table.classList.add("tl-placed");
})();
