// Behaviour of the demo page; plain mouse events (not HTML5 drag and drop) so WebDriver actions drive them.
function sayHello() {
  var name = document.getElementById('username').value;
  document.getElementById('greeting').textContent = 'Hello, ' + name;
}
(function () {
  var src = document.getElementById('drag-src'), target = document.getElementById('drop-target');
  var dragging = false, startX = 0, startY = 0;
  src.addEventListener('mousedown', function (e) { dragging = true; startX = e.clientX; startY = e.clientY; e.preventDefault(); });
  document.addEventListener('mouseup', function (e) {
    if (!dragging) return;
    dragging = false;
    var r = target.getBoundingClientRect();
    var inside = e.clientX >= r.left && e.clientX <= r.right && e.clientY >= r.top && e.clientY <= r.bottom;
    document.getElementById('drop-result').textContent = inside ? 'dropped' : 'missed';
    document.getElementById('drag-offset').textContent = (e.clientX - startX) + ',' + (e.clientY - startY);
  });
  document.getElementById('hover-zone').addEventListener('mouseover', function () {
    document.getElementById('hover-result').textContent = 'hovered';
  });
  var pad = document.getElementById('pad');
  pad.addEventListener('mousemove', function (e) {
    var r = pad.getBoundingClientRect();
    document.getElementById('pad-result').textContent = Math.round(e.clientX - r.left) + ',' + Math.round(e.clientY - r.top);
  });
  pad.addEventListener('click', function () { document.getElementById('pad-result').textContent += ' clicked'; });
  var keys = document.getElementById('keys');
  keys.addEventListener('keydown', function (e) { document.getElementById('key-down').textContent = 'down:' + e.key; });
  keys.addEventListener('keyup', function (e) { document.getElementById('key-result').textContent = 'up:' + e.key; });
})();
