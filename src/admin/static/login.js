// Login: POST the token as JSON; the server sets an HttpOnly session cookie and we go to the console.
(function () {
  'use strict';
  var form = document.getElementById('login-form');
  var err = document.getElementById('login-error');
  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    err.hidden = true;
    var token = document.getElementById('token').value;
    fetch('/admin/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token: token }),
      credentials: 'same-origin',
    })
      .then(function (res) {
        if (res.ok) {
          window.location.assign('/admin/');
          return;
        }
        return res.json().catch(function () { return {}; }).then(function (body) {
          err.textContent = res.status === 429 ? 'Too many failed attempts. Wait and try again.' : (body.error || 'Sign-in refused') ;
          err.hidden = false;
        });
      })
      .catch(function (e) {
        err.textContent = 'Node unreachable: ' + e.message;
        err.hidden = false;
      });
  });
})();
