/* Route tester panel (docs/routing.md): pick a stored study, or paste headers, and see which route takes it
 * and why (every condition: field, operator, expected, actual, ok), and which tasks would run and why.
 * Talks to /admin/api/routes/* only; builds the DOM with textContent (no HTML from data). */
(function () {
  'use strict';
  var panel = document.getElementById('route-tester');
  if (!panel) return;
  var sel = document.getElementById('rt-study');
  var out = document.getElementById('rt-result');
  var timeIn = document.getElementById('rt-time');
  var headersIn = document.getElementById('rt-headers');

  function api(method, path, body) {
    var init = { method: method, credentials: 'same-origin', headers: {} };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch('/admin/api/routes' + path, init).then(function (res) {
      return res.json().then(function (j) {
        if (!res.ok) throw new Error(j && j.error ? j.error : 'HTTP ' + res.status);
        return j;
      });
    });
  }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'cls') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function pill(ok, yes, no) { return el('span', { cls: 'pill ' + (ok ? 'pill-ok' : 'pill-muted'), text: ok ? yes : no }); }
  function show(v) { return v === undefined || v === null ? '–' : typeof v === 'string' ? v : JSON.stringify(v); }

  function loadStudies() {
    api('GET', '/stored').then(function (j) {
      var keep = sel.value;
      sel.textContent = '';
      sel.appendChild(el('option', { value: '', text: j.studies.length ? 'choose a stored study…' : 'no study stored' }));
      j.studies.forEach(function (s) {
        var label = s.studyRef + ' · ' + (s.modalities.join('/') || '?') + ' · ' + s.series + ' series, ' + s.instances + ' instances';
        sel.appendChild(el('option', { value: s.studyInstanceUid || s.studyRef, text: label, 'data-ref': s.studyRef }));
      });
      if (keep) sel.value = keep;
    }).catch(function (e) { out.textContent = 'Could not list stored studies: ' + e.message; });
  }

  function render(r) {
    out.textContent = '';
    var head = el('p', {}, [
      el('span', { text: 'Route: ' }),
      el('b', { 'data-testid': 'rt-route', text: r.route === null ? 'none' : r.route }),
      el('span', { cls: 'muted small', text: '  (' + r.source + (r.studyRef ? ' ' + r.studyRef : '') + ', at ' + r.facts.time + '; first matching route in configuration order wins)' }),
    ]);
    out.appendChild(head);
    if (r.noRoute) out.appendChild(el('p', { cls: 'muted', 'data-testid': 'rt-noroute', text: r.noRoute }));
    if (r.routeNote) out.appendChild(el('p', { cls: 'warn', 'data-testid': 'rt-routenote', text: 'Taken at arrival: ' + r.takenRoute + '. ' + r.routeNote }));
    var rows = [];
    r.routes.forEach(function (e) {
      if (!e.checks.length) {
        rows.push(el('tr', { 'data-route': e.route }, [el('td', { text: e.route }), el('td', {}, [pill(e.ok, 'matches', 'no')]), el('td', { colspan: '5', cls: 'muted', text: 'empty match: takes every study' })]));
      }
      e.checks.forEach(function (c, i) {
        rows.push(el('tr', { 'data-route': e.route }, [
          el('td', { text: i === 0 ? e.route : '' }),
          el('td', {}, i === 0 ? [pill(e.ok, e.route === r.route ? 'TAKEN' : 'matches', 'no')] : []),
          el('td', { text: c.field }),
          el('td', { text: c.operator }),
          el('td', { text: show(c.expected) }),
          el('td', { text: show(c.actual) }),
          el('td', {}, [pill(c.ok, 'ok', 'fails')]),
        ]));
      });
    });
    out.appendChild(el('div', { cls: 'table-wrap' }, [el('table', { cls: 'grid', 'data-testid': 'rt-routes' }, [
      el('thead', {}, [el('tr', {}, ['Route', 'Result', 'Field', 'Operator', 'Expected', 'Study has', 'Condition'].map(function (h) { return el('th', { text: h }); }))]),
      el('tbody', {}, rows),
    ])]));
    if (r.tasks) {
      out.appendChild(el('p', { cls: 'muted small', text: 'Tasks on route ' + r.route + ' (content: ' + (r.tasks.available.join(', ') || 'nothing usable') + ', from ' + r.tasks.availabilityFrom + ')' }));
      out.appendChild(el('div', { cls: 'table-wrap' }, [el('table', { cls: 'grid', 'data-testid': 'rt-tasks' }, [
        el('thead', {}, [el('tr', {}, ['Task', 'Runs', 'Why'].map(function (h) { return el('th', { text: h }); }))]),
        el('tbody', {}, r.tasks.decisions.map(function (d) {
          return el('tr', { 'data-task': d.task }, [el('td', { text: d.task }), el('td', {}, [pill(d.run, 'runs', d.listed ? 'not run' : 'not listed')]), el('td', { text: d.reason })]);
        })),
      ])]));
      r.tasks.notes.forEach(function (n) { out.appendChild(el('p', { cls: 'muted small', text: n })); });
    }
  }

  function run(body) {
    if (timeIn.value) body.time = timeIn.value;
    out.textContent = 'testing…';
    api('POST', '/test', body).then(render).catch(function (e) { out.textContent = 'Route test failed: ' + e.message; });
  }

  document.getElementById('rt-run').addEventListener('click', function () {
    if (!sel.value) { out.textContent = 'Choose a stored study first.'; return; }
    run({ studyInstanceUid: sel.value });
  });
  document.getElementById('rt-run-headers').addEventListener('click', function () {
    var body;
    try { body = JSON.parse(headersIn.value || '{}'); } catch (e) { out.textContent = 'Headers are not valid JSON: ' + e.message; return; }
    run(body);
  });
  document.getElementById('rt-refresh').addEventListener('click', loadStudies);
  loadStudies();
})();
