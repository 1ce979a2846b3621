// Admin console: polls /admin/api/overview every 2 s and renders it; actions are JSON POSTs.
// Data is only ever inserted with textContent (never innerHTML), so nothing from DICOM can inject markup.
(function () {
  'use strict';
  var POLL_MS = 2000;
  var last = null;
  var busy = false;

  // ---------- helpers ----------
  function $(id) { return document.getElementById(id); }
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k === 'text') el.textContent = String(v);
        else if (k === 'cls') el.className = v;
        else if (k === 'title') el.title = String(v);
        else el.setAttribute(k, v === true ? '' : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === undefined || c === null || c === false) continue;
      if (Array.isArray(c)) c.forEach(function (x) { if (x) el.appendChild(typeof x === 'string' ? document.createTextNode(x) : x); });
      else el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return el;
  }
  function td(content, cls, title) {
    var cell = h('td', { cls: cls, title: title });
    if (content instanceof Node) cell.appendChild(content);
    else cell.textContent = content === null || content === undefined || content === '' ? '–' : String(content);
    return cell;
  }
  function pill(text, kind, testid) { return h('span', { cls: 'pill pill-' + kind, 'data-testid': testid, text: text }); }
  function fmtTime(ms) {
    if (!ms) return '–';
    var d = new Date(ms);
    var today = new Date();
    var pad = function (n) { return (n < 10 ? '0' : '') + n; };
    var t = pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    if (d.toDateString() === today.toDateString()) return t;
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + t;
  }
  function fmtAgo(ms, now) {
    if (!ms) return '–';
    var s = Math.round(((now || Date.now()) - ms) / 1000);
    if (s < 0) return 'in ' + fmtDur(-s);
    return fmtDur(s) + ' ago';
  }
  function fmtDur(s) {
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }
  function fmtMs(ms) {
    if (ms === null || ms === undefined) return '–';
    if (ms >= 10000) return (ms / 1000).toFixed(1) + ' s';
    if (ms >= 1000) return (ms / 1000).toFixed(2) + ' s';
    return Math.round(ms) + ' ms';
  }
  function fmtMb(mb) {
    if (mb === null || mb === undefined) return '–';
    return mb >= 10240 ? (mb / 1024).toFixed(1) + ' GB' : Math.round(mb) + ' MB';
  }
  var STATE_KIND = {
    collecting: 'info', ready: 'info', running: 'run', done: 'ok', not_processed: 'warn', failed: 'error', dead: 'error',
    pending: 'info', sending: 'run', sent: 'ok',
    loading: 'run', disabled: 'error', error: 'error',
  };
  function statePill(state, testid) { return pill(String(state).replace('_', ' '), STATE_KIND[state] || 'muted', testid); }
  function replaceBody(table, rows, emptyText) {
    var tbody = $(table).tBodies[0];
    var cols = $(table).tHead.rows[0].cells.length;
    var frag = document.createDocumentFragment();
    if (!rows.length) frag.appendChild(h('tr', { cls: 'empty' }, h('td', { colspan: cols, text: emptyText })));
    rows.forEach(function (r) { frag.appendChild(r); });
    tbody.replaceChildren(frag);
  }
  function actionBtn(label, action, data, kind) {
    var attrs = { cls: 'btn btn-sm' + (kind ? ' btn-' + kind : ''), 'data-action': action };
    Object.keys(data || {}).forEach(function (k) { attrs['data-' + k] = data[k]; });
    return h('button', attrs, label);
  }
  function toast(text, kind) {
    var t = $('toast');
    t.textContent = text;
    t.className = 'toast toast-' + (kind || 'ok');
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.hidden = true; }, 4000);
  }

  // ---------- API ----------
  function api(method, path, body) {
    var init = { method: method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (method !== 'GET') {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body || {});
    }
    return fetch('/admin/api' + path, init).then(function (res) {
      if (res.status === 401) {
        window.location.assign('/admin/login');
        throw new Error('session expired');
      }
      return res.json().catch(function () { return {}; }).then(function (j) {
        if (!res.ok) throw new Error(j.error || ('HTTP ' + res.status));
        return j;
      });
    });
  }

  // ---------- rendering ----------
  function renderStatus(s) {
    $('node-name').textContent = s.nodeName;
    document.title = s.nodeName + ' · Admin';
    $('s-version').textContent = s.version;
    $('s-uptime').textContent = 'up ' + fmtDur(s.uptimeSeconds);
    $('s-ae').textContent = s.aeTitle;
    $('s-ports').textContent = 'DIMSE ' + (s.dimsePort || 'off') + ' · HTTP ' + s.httpPort;
    $('s-models').textContent = s.models.ready + ' / ' + s.models.total;
    $('s-models').className = 'tile-value ' + (s.models.total && !s.models.ready ? 'text-error' : '');
    var q = s.queue;
    $('s-queue').textContent = String(q.collecting + q.ready + q.running);
    $('s-queue-sub').textContent = q.running + ' running · ' + q.ready + ' ready · ' + q.collecting + ' collecting';
    $('s-queue').className = 'tile-value ' + (q.dead ? 'text-error' : '');
    var d = s.disk;
    var used = d.totalMb ? Math.max(0, Math.min(1, 1 - d.freeMb / d.totalMb)) : 0;
    var bar = $('disk-used');
    bar.style.width = (used * 100).toFixed(1) + '%';
    bar.className = 'disk-used disk-' + d.level;
    $('disk-mark').style.left = d.totalMb ? (Math.max(0, 1 - d.minFreeMb / d.totalMb) * 100).toFixed(1) + '%' : '100%';
    $('s-disk').textContent = fmtMb(d.freeMb) + ' free of ' + fmtMb(d.totalMb) + ' · watermark ' + fmtMb(d.minFreeMb) + ' · instances ' + d.instances + ' (' + fmtMb(d.instancesMb) + ') · retention ' + d.retentionDays + ' d';
    $('s-disk').setAttribute('data-level', d.level);
    $('banner-paused').hidden = !s.paused;
    $('btn-pause').hidden = s.paused;
    $('btn-resume').hidden = !s.paused;
    document.querySelectorAll('.col-patient').forEach(function (c) { c.hidden = !s.showPatientIdentifiers; });
  }

  function studyCell(j) {
    var wrap = h('span', { cls: 'mono', title: 'anonymised study reference (sha256 of the Study Instance UID)' }, j.studyRef);
    if (!j.duplicates) return wrap;
    var p = pill('×' + j.duplicates, 'warn', 'study-dup-' + j.id);
    p.title = 're-sent: ' + j.duplicates + ' instance(s) arrived again after they were stored (not processed again)';
    return h('span', null, wrap, ' ', p);
  }

  function deliveryCell(o) {
    if (o && !o.delivery.total && o.egressVia === 'shared' && o.outputs.length && o.destinations.length) return pill('handed to senders', 'info');
    if (!o || !o.delivery.total) return h('span', { cls: 'muted', text: o && o.destinations.length ? 'not queued' : '–' });
    var d = o.delivery;
    var kind = d.dead ? 'error' : d.failed ? 'warn' : d.sent === d.total ? 'ok' : 'info';
    var text = d.sent + '/' + d.total + ' sent' + (d.dead ? ' · ' + d.dead + ' dead' : '') + (d.failed ? ' · ' + d.failed + ' failed' : '');
    return pill(text, kind);
  }
  function vol(v) { return v === null || v === undefined ? '–' : v.toFixed(2); }

  function renderStudies(list, showIds) {
    var rows = list.map(function (j) {
      var o = j.outcome;
      var detail = j.error || (o && (o.reason || o.note)) || '';
      var patient = showIds ? td(j.patient ? (j.patient.patientName || '?') + ' · ' + (j.patient.patientId || '?') : '–', 'col-patient') : null;
      var manual = j.manualReprocess ? pill('↻', 'info', 'study-manual-' + j.id) : null;
      if (manual) manual.title = 'reprocessed on purpose by an operator';
      var state = h('span', null, statePill(j.state), manual ? ' ' : null, manual);
      var tr = h('tr', { cls: 'clickable', 'data-testid': 'study-row-' + j.id, 'data-state': j.state, 'data-study': j.studyRef, title: 'open the study' },
        td(j.id, 'num'),
        td(fmtTime(j.createdAt), null, new Date(j.createdAt).toISOString()),
        td(studyCell(j)),
        patient,
        td(j.route),
        td(state),
        td(o ? (o.available.length ? o.available.join(' + ') : 'nothing usable') : '–', null, o ? o.seriesCount + ' series' : ''),
        td(o ? o.decision : '–'),
        td(o && o.model ? (o.synthesisModel ? o.synthesisModel.name + ' → ' : '') + o.model.name + ' ' + o.model.version : '–', 'model', o && o.model ? o.model.executionProvider : ''),
        td(o && (o.lesionVolumeMl !== null || o.coreVolumeMl !== null) ? vol(o.lesionVolumeMl) + ' / ' + vol(o.coreVolumeMl) : '–', 'num', 'lesion / core volume, ml'),
        td(o && o.outputs.length ? o.outputs.map(function (x) { return x.count > 1 ? x.kind + '×' + x.count : x.kind; }).join(', ') : '–'),
        td(deliveryCell(o)),
        td(o ? fmtMs(o.timingsMs.total) : (j.finishedAt && j.startedAt ? fmtMs(j.finishedAt - j.startedAt) : '–'), 'num', o ? 'inference ' + fmtMs(o.timingsMs.inference) + ' of ' + fmtMs(o.timingsMs.total) + ' (every stage in the study view)' : ''),
        td(detail, 'detail', detail),
        td(['failed', 'dead', 'not_processed'].indexOf(j.state) >= 0 ? actionBtn('Retry', 'retry-job', { id: j.id }) : '', 'actions'));
      if (!showIds) {
        // keep column count aligned with the header (patient column hidden)
        tr.insertBefore(h('td', { cls: 'col-patient', hidden: true }), tr.children[3]);
      }
      return tr;
    });
    replaceBody('studies-table', rows, 'No study received yet.');
  }

  function renderQueue(q) {
    var order = ['collecting', 'ready', 'running', 'done', 'not_processed', 'failed', 'dead'];
    var counts = $('queue-counts');
    counts.replaceChildren.apply(counts, order.map(function (s) {
      return h('div', { cls: 'count count-' + (STATE_KIND[s] || 'muted') + (q.counts[s] ? '' : ' count-zero'), 'data-testid': 'queue-count-' + s },
        h('div', { cls: 'count-n', text: q.counts[s] }), h('div', { cls: 'count-l', text: s.replace('_', ' ') }));
    }));
    var open = ['running', 'ready', 'collecting', 'failed', 'dead', 'not_processed'];
    var rows = [];
    open.forEach(function (s) {
      (q.jobs[s] || []).forEach(function (j) {
        var since = j.state === 'running' ? j.startedAt : j.state === 'ready' ? j.readyAt : j.state === 'collecting' ? j.createdAt : j.finishedAt;
        rows.push(h('tr', { 'data-testid': 'queue-row-' + j.id },
          td(j.id, 'num'), td(statePill(j.state)), td(studyCell(j)), td(j.route), td(j.priority), td(j.instanceCount, 'num'),
          td(fmtAgo(since, last && last.status.serverTime)), td(j.attempts, 'num'), td(j.handoff), td(j.error || (j.outcome && j.outcome.reason) || '', 'detail', j.error || ''),
          td(['failed', 'dead', 'not_processed'].indexOf(j.state) >= 0 ? actionBtn('Retry', 'retry-job', { id: j.id }) : '', 'actions')));
      });
    });
    replaceBody('queue-table', rows, 'Nothing waiting, running or failed.');
    // Shared queue: results handed from worker processes to sender processes.
    var hl = $('handoff-line');
    hl.hidden = !q.handoff;
    if (q.handoff) {
      var f = q.handoff.failed;
      hl.className = f ? 'text-error' : 'muted';
      hl.replaceChildren(
        document.createTextNode('Results for the sender processes (shared queue): ' + (q.handoff.waiting + q.handoff.delayed) + ' waiting · ' +
          q.handoff.active + ' being taken · ' + f + ' failed (kept) '),
        f ? actionBtn('Retry failed hand-offs', 'retry-handoffs', {}) : document.createTextNode(''));
    }
  }

  function renderModels(models) {
    var rows = models.map(function (m) {
      var st = m.selfTest;
      var selftest = !st ? h('span', { cls: 'muted', text: 'not run' })
        : pill((st.pass ? 'pass' : 'fail') + (st.dice !== null ? ' · Dice ' + st.dice.toFixed(2) : '') + ' · ' + fmtAgo(st.at, last && last.status.serverTime), st.pass ? 'ok' : 'error', 'selftest-' + m.name);
      if (st && st.error) selftest.title = st.error;
      var fallbacks = m.fallbacks && m.fallbacks.length ? ' (fell back from ' + m.fallbacks.map(function (f) { return f.provider; }).join(', ') + ')' : '';
      return h('tr', { 'data-testid': 'model-row-' + m.name },
        td(h('b', { text: m.name })), td(m.version), td(m.task), td(pill(m.status, m.status === 'ready' ? 'ok' : STATE_KIND[m.status] || 'muted', 'model-status-' + m.name)),
        td((m.executionProvider || '–') + fallbacks, null, (m.fallbacks || []).map(function (f) { return f.provider + ': ' + f.error; }).join('\n')),
        h('td', { cls: 'num', 'data-testid': 'model-inferences-' + m.name, text: m.inferences }),
        td(m.lastLatencyMs, 'num'), td(m.medianLatencyMs, 'num'), td(selftest), td(m.loadedAt ? fmtTime(Date.parse(m.loadedAt)) : '–'),
        td(m.lastError || '', 'detail text-error', m.lastError || ''));
    });
    replaceBody('models-table', rows, 'No model installed (models/*.json). Studies are received but not processed.');
  }

  function destHealth(d) {
    if (d.dead) return pill('dead rows', 'error');
    if (d.consecutiveFailures) return pill('failing', 'warn');
    if (d.lastSuccessAt) return pill('ok', 'ok');
    return pill('no traffic yet', 'muted');
  }

  function renderDestinations(list) {
    var now = last && last.status.serverTime;
    var rows = list.map(function (d) {
      return h('tr', { 'data-testid': 'dest-row-' + d.destination },
        td(h('b', { text: d.destination })), td(d.type), td(d.target, 'mono'), td(destHealth(d)),
        td(d.lastSuccessAt ? fmtAgo(d.lastSuccessAt, now) : 'never', null, d.lastSuccessAt ? new Date(d.lastSuccessAt).toISOString() : ''),
        td(d.lastFailureAt ? fmtAgo(d.lastFailureAt, now) : '–', null, d.lastFailureAt ? new Date(d.lastFailureAt).toISOString() : ''),
        td(d.consecutiveFailures, 'num'),
        h('td', { cls: 'num', 'data-testid': 'dest-outbox-' + d.destination, text: d.outboxSize }),
        h('td', { cls: 'num', 'data-testid': 'dest-sent-' + d.destination, text: d.sent }),
        h('td', { cls: 'num' + (d.dead ? ' text-error' : ''), 'data-testid': 'dest-dead-' + d.destination, text: d.dead }),
        td(d.nextAttemptAt ? fmtAgo(d.nextAttemptAt, now) : '–'),
        // the last error stays recorded after a success: show it only while the destination is failing
        td(d.lastError && (!d.lastSuccessAt || (d.lastFailureAt || 0) > d.lastSuccessAt) ? d.lastError : '', 'detail', d.lastError ? 'last error: ' + d.lastError : ''),
        td(h('span', null,
          d.failed ? actionBtn('Retry all failed (' + d.failed + ')', 'retry-failed-dest', { dest: d.destination }) : null,
          d.failed && d.dead ? ' ' : null,
          d.dead ? actionBtn('Retry all dead (' + d.dead + ')', 'retry-dead', { dest: d.destination }, 'primary') : null), 'actions'));
    });
    replaceBody('dest-table', rows, 'No destination configured: results stay on this node.');
    var size = list.reduce(function (n, d) { return n + d.outboxSize; }, 0);
    var dead = list.reduce(function (n, d) { return n + d.dead; }, 0);
    $('s-outbox').textContent = String(size);
    $('s-outbox').className = 'tile-value ' + (dead ? 'text-error' : '');
    $('s-outbox-sub').textContent = dead + ' dead · ' + list.length + ' destination' + (list.length === 1 ? '' : 's');
  }

  var expandedGroups = {};
  function outboxRowEl(r, now) {
    return h('tr', { 'data-testid': 'outbox-row-' + r.id, 'data-state': r.state },
      td(r.id, 'num'), td(r.kind), td(statePill(r.state)),
      td(r.attempts, 'num'), td(r.lastStatus === null ? '' : (r.lastStatus > 999 ? '0x' + r.lastStatus.toString(16).toUpperCase() : r.lastStatus)),
      td(r.lastError || '', 'detail', r.lastError || ''), td(fmtAgo(r.updatedAt, now)), td(r.nextAttemptAt ? fmtAgo(r.nextAttemptAt, now) : '–'),
      td(r.state === 'dead' || r.state === 'failed' ? actionBtn('Retry', 'retry-row', { id: r.id }) : '', 'actions'));
  }

  function renderOutbox(groups) {
    var now = last && last.status.serverTime;
    var rows = [];
    var failedTotal = 0;
    groups.forEach(function (g) {
      var c = g.counts;
      failedTotal += c.failed;
      var open = !!expandedGroups[g.key];
      var retryN = c.failed + c.dead;
      rows.push(h('tr', { cls: 'clickable group-row', 'data-testid': 'outbox-group-' + g.studyRef + '-' + g.destination, 'data-group': g.key,
        'data-state': c.dead ? 'dead' : c.failed ? 'failed' : c.sending ? 'sending' : 'pending', 'aria-expanded': open ? 'true' : 'false' },
        td(open ? '▾' : '▸', 'toggle'), td(h('span', { cls: 'mono', text: g.studyRef })), td(g.destination), td(g.kinds.join(', ')),
        td(c.pending + c.sending, 'num'), h('td', { cls: 'num' + (c.failed ? ' text-warn' : ''), text: c.failed }),
        h('td', { cls: 'num' + (c.dead ? ' text-error' : ''), text: c.dead }), td(c.sent + ' / ' + g.total, 'num'),
        td(g.lastError || '', 'detail', g.lastError || ''), td(fmtAgo(g.updatedAt, now)), td(g.nextAttemptAt ? fmtAgo(g.nextAttemptAt, now) : '–'),
        td(retryN ? actionBtn('Retry ' + retryN, 'retry-group', { dest: g.destination, study: g.studyRef }) : '', 'actions')));
      var inner = h('table', { cls: 'grid inner' },
        h('thead', null, h('tr', null, ['Row', 'Object', 'State', 'Attempts', 'Last status', 'Last error', 'Updated', 'Next attempt', ''].map(function (x) { return h('th', { text: x }); }))),
        h('tbody', null, g.rows.map(function (r) { return outboxRowEl(r, now); })));
      rows.push(h('tr', { cls: 'group-sub', hidden: !open, 'data-sub-of': g.key }, h('td', { colspan: 12 }, inner)));
    });
    replaceBody('outbox-table', rows, 'Everything delivered.');
    var b = $('btn-retry-all-failed');
    b.hidden = !failedTotal;
    b.textContent = 'Retry all failed (' + failedTotal + ')';
  }

  function renderAlerts(alerts) {
    var box = $('alerts');
    box.hidden = !alerts.length;
    box.replaceChildren.apply(box, alerts.map(function (a) {
      return h('div', { cls: 'alert alert-' + a.level, 'data-testid': 'alert-' + a.id, 'data-kind': a.kind },
        h('span', { cls: 'alert-icon', text: a.level === 'error' ? '●' : '▲' }), ' ', a.text,
        a.since ? h('span', { cls: 'muted small', text: ' · since ' + fmtTime(a.since) }) : null);
    }));
  }

  // ---------- study drill-down (#/studies/<ref>) ----------
  var detailKey = null;
  function detailRoute() {
    var m = /^#\/studies\/([^/?#]+)$/.exec(window.location.hash);
    return m ? decodeURIComponent(m[1]) : null;
  }
  function kv(label, value, testid) {
    if (value === null || value === undefined || value === '') return null;
    return h('div', { cls: 'kv' }, h('span', { cls: 'kv-k', text: label }), h('span', { cls: 'kv-v', 'data-testid': testid, text: String(value) }));
  }
  function miniTable(headers, rows, testid, empty) {
    return h('table', { cls: 'grid inner', 'data-testid': testid },
      h('thead', null, h('tr', null, headers.map(function (x) { return h('th', { text: x }); }))),
      h('tbody', null, rows.length ? rows : h('tr', { cls: 'empty' }, h('td', { colspan: headers.length, text: empty || '–' }))));
  }
  function jobSection(j, open) {
    var o = j.outcome;
    var sum = h('summary', null, h('b', { text: 'Job ' + j.id }), ' ', statePill(j.state), ' ',
      j.manualReprocess ? pill('manual reprocess', 'info') : null, ' ',
      h('span', { cls: 'muted', text: 'route ' + j.route + ' · received ' + fmtTime(j.createdAt) + (j.finishedAt ? ' · finished ' + fmtTime(j.finishedAt) : '') + ' · ' + j.instanceCount + ' instance(s)' + (j.previousJobId ? ' · follows job ' + j.previousJobId : '') }));
    var decision = h('div', { cls: 'kvs' },
      kv('Decision', o ? o.decision : null, 'sd-decision-' + j.id),
      kv('Why', j.error || (o && o.reason) || null, 'sd-reason-' + j.id),
      kv('Model', o && o.model ? (o.synthesisModel ? o.synthesisModel.name + ' ' + o.synthesisModel.version + ' → ' : '') + o.model.name + ' ' + o.model.version + ' (' + o.model.executionProvider + ')' : null),
      kv('Note', o ? o.note : null),
      kv('Lesion', o && o.lesionVolumeMl !== null ? o.lesionVolumeMl.toFixed(2) + ' ml' : null),
      kv('Core', o && o.coreVolumeMl !== null ? o.coreVolumeMl.toFixed(2) + ' ml' : null),
      kv('Core note', j.coreNote),
      kv('Post-processing', j.postprocessing),
      kv('Hand-off', j.handoff), kv('Attempts', j.attempts));
    var tasks = j.tasks ? h('div', null, h('h3', { text: 'Tasks: which ran and why' }), miniTable(['Task', 'On route', 'Ran', 'Why', 'Details'], j.tasks.map(function (t, i) {
      var ran = t.error ? pill('failed', 'error') : pill(t.ran ? 'ran' : 'not run', t.ran ? 'ok' : 'muted');
      return h('tr', { 'data-testid': 'sd-task-' + j.id + '-' + i, 'data-ran': t.ran ? 'yes' : 'no' },
        td(h('b', { text: t.task, title: t.title || '' })), td(t.listed === null ? '–' : t.listed ? 'listed' : 'not listed'), td(ran),
        td(t.error ? t.reason + ' · error: ' + t.error : t.reason, 'wrap'), td(t.details.join(' · '), 'wrap'));
    }), 'sd-tasks-' + j.id)) : null;
    var series = h('div', null, h('h3', { text: 'Series and how each was classified' }), miniTable(['Series', 'Classification', 'Usable', 'b-values', 'Reason'], j.series.map(function (x, i) {
      return h('tr', { 'data-testid': 'sd-series-' + j.id + '-' + i, 'data-usable': x.usable ? 'yes' : 'no' },
        td(x.description || '(no description)'), td(h('b', { text: x.classification })), td(pill(x.usable ? 'usable' : 'not usable', x.usable ? 'ok' : 'warn')),
        td(x.bValues && x.bValues.length ? x.bValues.join(', ') : '–', 'num'), td(x.reason, 'wrap'));
    }), 'sd-series-' + j.id, o ? 'The outcome lists no series.' : 'Not processed yet.'),
      j.notes.length ? h('ul', { cls: 'notes', 'data-testid': 'sd-notes-' + j.id }, j.notes.map(function (n) { return h('li', { text: n }); })) : null);
    var timingKeys = o ? Object.keys(o.timingsMs) : [];
    var total = o && o.timingsMs.total ? o.timingsMs.total : timingKeys.reduce(function (n, k) { return Math.max(n, o.timingsMs[k]); }, 0);
    var timings = timingKeys.length ? h('div', null, h('h3', { text: 'Stage timings' }), miniTable(['Stage', 'Time', ''], timingKeys.map(function (k) {
      var ms = o.timingsMs[k];
      var bar = h('div', { cls: 'tbar' }, h('div', { cls: 'tbar-fill' }));
      bar.firstChild.style.width = (total ? Math.min(100, (ms / total) * 100) : 0).toFixed(1) + '%';
      return h('tr', { 'data-testid': 'sd-timing-' + j.id + '-' + k }, td(k), td(fmtMs(ms), 'num'), td(bar, 'bar-cell'));
    }), 'sd-timings-' + j.id)) : null;
    var objRows = [];
    j.objects.forEach(function (x, i) {
      var list = x.deliveries.length ? x.deliveries : [null];
      list.forEach(function (d) {
        objRows.push(h('tr', { 'data-testid': 'sd-object-' + j.id + '-' + i + (d ? '-' + d.destination : ''), 'data-state': d ? d.state : 'not-sent' },
          td(h('b', { text: x.kind })), td(x.seriesInstanceUid, 'mono'), td(d ? d.destination : '–'), td(d ? statePill(d.state) : pill('not sent', 'muted')),
          td(d ? d.attempts : '–', 'num'), td(d ? (d.lastError || (d.sentAt ? 'sent ' + fmtTime(d.sentAt) : '')) : x.notSent, 'wrap')));
      });
      if (x.deliveries.length && x.notSent) objRows.push(h('tr', null, td(x.kind), td(x.seriesInstanceUid, 'mono'), td('–'), td(pill('not sent', 'muted')), td('–'), td(x.notSent, 'wrap')));
    });
    var objects = h('div', null, h('h3', { text: 'Objects written and where each went' }), miniTable(['Object', 'Series UID', 'Destination', 'State', 'Attempts', 'Last error / why'], objRows, 'sd-objects-' + j.id, 'No object written.'));
    var body = h('div', { cls: 'job-body' }, decision, tasks, series, timings, objects);
    var det = h('details', { cls: 'job', 'data-testid': 'sd-job-' + j.id, 'data-job': j.id }, sum, body);
    det.open = open;
    return det;
  }
  var openJobs = {};
  function renderDetail(d) {
    $('sd-title').textContent = 'Study ' + d.studyRef;
    var sub = d.instances + ' instance(s) in ' + d.storedSeries.length + ' series · ' + d.jobs.length + ' job(s)';
    if (d.patient) sub += ' · ' + (d.patient.patientName || '?') + ' · ' + (d.patient.patientId || '?');
    $('sd-sub').textContent = sub;
    var dup = d.duplicates ? h('div', { cls: 'banner-inline banner-warn', 'data-testid': 'sd-duplicates' },
      'Re-sent: ' + d.duplicates + ' instance(s) arrived again after they were stored. They were acknowledged and not processed again; use "Reprocess study" to run it on purpose.') : null;
    var stored = h('div', null, h('h3', { text: 'Stored series' }), miniTable(['#', 'Description', 'Modality', 'Instances', 'Re-sent'], d.storedSeries.map(function (x) {
      return h('tr', null, td(x.seriesNumber, 'num'), td(x.description || '(no description)'), td(x.modality), td(x.instances, 'num'), td(x.duplicates, 'num'));
    }), 'sd-stored', 'No instance stored (removed by retention?).'));
    var route = null;
    if (d.routeCheck) {
      var rc = d.routeCheck;
      var taken = d.jobs.length ? d.jobs[0].route : null;
      route = h('div', null, h('h3', { text: 'Route decision' }),
        h('p', { cls: 'small', 'data-testid': 'sd-route-summary' },
          taken ? 'Taken: ' + taken + ' (chosen at arrival, on the AE titles and the headers received by then). ' : 'No job: no route matched at arrival. ',
          'The rules read the stored headers now (' + fmtTime(rc.evaluatedAt) + '): ' + (rc.route ? 'route ' + rc.route : 'no route matches') + '.'),
        miniTable(['Route', 'Matches', 'Conditions (expected, what the study has)'], rc.routes.map(function (r) {
          var conds = r.checks.length ? r.checks.map(function (c) {
            return (c.ok ? '✓ ' : '✗ ') + c.field + ' ' + c.operator + ' ' + JSON.stringify(c.expected) + ' (study: ' + JSON.stringify(c.actual) + ')';
          }).join('; ') : 'no condition: takes every study';
          return h('tr', { 'data-testid': 'sd-route-' + r.route, 'data-ok': r.ok ? 'yes' : 'no' },
            td(h('b', { text: r.route })), td(pill(r.ok ? 'matches' : 'no match', r.ok ? 'ok' : 'muted')), td(conds, 'wrap'));
        }), 'sd-routes', 'No route configured.'));
    }
    var jobs = d.jobs.map(function (j, i) {
      var open = openJobs[j.id] !== undefined ? openJobs[j.id] : i === 0;
      return jobSection(j, open);
    });
    $('sd-body').replaceChildren(dup || document.createTextNode(''), stored, route || document.createTextNode(''), h('div', { cls: 'jobs' }, jobs));
    $('sd-body').querySelectorAll('details.job').forEach(function (el) {
      el.addEventListener('toggle', function () { openJobs[el.dataset.job] = el.open; });
    });
  }
  function loadDetail() {
    var key = detailRoute();
    var panel = $('study-detail');
    if (!key) {
      detailKey = null;
      panel.hidden = true;
      return Promise.resolve();
    }
    if (key !== detailKey) { openJobs = {}; $('sd-body').replaceChildren(h('p', { cls: 'muted', text: 'Loading…' })); }
    detailKey = key;
    panel.hidden = false;
    $('btn-reprocess').dataset.study = key;
    return api('GET', '/studies/' + encodeURIComponent(key)).then(function (d) {
      if (detailRoute() === key) renderDetail(d);
    }, function (e) {
      $('sd-body').replaceChildren(h('p', { cls: 'text-error', text: e.message }));
    });
  }
  function openStudy(ref) {
    window.location.hash = '#/studies/' + encodeURIComponent(ref);
  }
  window.addEventListener('hashchange', function () {
    loadDetail().then(function () { if (detailKey) $('study-detail').scrollIntoView({ block: 'start' }); });
  });
  $('btn-close-detail').addEventListener('click', function () { window.location.hash = '#studies'; });
  $('studies-table').addEventListener('click', function (ev) {
    if (ev.target.closest('button')) return;
    var tr = ev.target.closest('tr[data-study]');
    if (tr) openStudy(tr.dataset.study);
  });
  $('outbox-table').addEventListener('click', function (ev) {
    if (ev.target.closest('button')) return;
    var tr = ev.target.closest('tr.group-row');
    if (!tr) return;
    var key = tr.dataset.group;
    expandedGroups[key] = !expandedGroups[key];
    tr.setAttribute('aria-expanded', expandedGroups[key] ? 'true' : 'false');
    tr.firstChild.textContent = expandedGroups[key] ? '▾' : '▸';
    var sub = tr.nextElementSibling;
    if (sub && sub.dataset.subOf === key) sub.hidden = !expandedGroups[key];
  });

  // Times in a task summary (e.g. disk-check's `at`, epoch ms) are shown as local date-time, ISO in the tooltip of the row.
  function summaryValue(k, v) {
    if (typeof v === 'number' && (k === 'at' || /At$/.test(k)) && v > 1e11) return fmtTime(v);
    if (v !== null && typeof v === 'object') return JSON.stringify(v);
    return v;
  }

  function renderHousekeeping(hk) {
    var tasks = ['retention', 'outbox-sweep', 'model-selftest', 'disk-check'];
    var now = last && last.status.serverTime;
    replaceBody('hk-table', !hk ? [] : tasks.map(function (t) {
      var r = hk.lastRuns[t];
      var summary = r ? (r.error || Object.keys(r.summary).filter(function (k) { return k !== 'cutoff'; }).map(function (k) { return k + ' ' + summaryValue(k, r.summary[k]); }).join(' · ')) : '';
      return h('tr', { 'data-testid': 'hk-row-' + t },
        td(t), td(r ? fmtAgo(r.finishedAt, now) : 'not yet'), td(r ? pill(r.ok ? 'ok' : 'failed', r.ok ? 'ok' : 'error') : '–'),
        td(summary, 'detail', summary), td(hk.nextRuns[t] ? fmtTime(Date.parse(hk.nextRuns[t])) : 'not scheduled'),
        td(actionBtn('Run now', 'run-task', { task: t }), 'actions'));
    }), 'Housekeeping is not running.');
  }

  function render(o) {
    last = o;
    renderStatus(o.status);
    renderStudies(o.studies, o.status.showPatientIdentifiers);
    renderQueue(o.queue);
    renderModels(o.models);
    renderDestinations(o.destinations);
    renderOutbox(o.outboxGroups);
    renderAlerts(o.alerts);
    renderHousekeeping(o.status.housekeeping);
  }

  function refresh() {
    return api('GET', '/overview').then(function (o) {
      render(o);
      return loadDetail().then(function () { return o; });
    }).then(function (o) {
      var c = $('conn');
      c.textContent = 'live · ' + fmtTime(o.status.serverTime);
      c.className = 'pill pill-ok';
      $('banner-error').hidden = true;
    }).catch(function (e) {
      var c = $('conn');
      c.textContent = 'offline';
      c.className = 'pill pill-error';
      var b = $('banner-error');
      b.textContent = 'Cannot reach the node: ' + e.message;
      b.hidden = false;
    });
  }

  // ---------- actions ----------
  var ACTIONS = {
    'pause': function () { return api('POST', '/actions/pause').then(function () { return 'Processing paused'; }); },
    'resume': function () { return api('POST', '/actions/resume').then(function () { return 'Processing resumed'; }); },
    'retry-job': function (b) { return api('POST', '/actions/jobs/' + b.dataset.id + '/retry').then(function () { return 'Job ' + b.dataset.id + ' queued again'; }); },
    'retry-row': function (b) { return api('POST', '/actions/outbox/' + b.dataset.id + '/retry').then(function () { return 'Row ' + b.dataset.id + ' will be sent again'; }); },
    'retry-dead': function (b) { return api('POST', '/actions/destinations/' + encodeURIComponent(b.dataset.dest) + '/retry-dead').then(function (r) { return r.rows + ' dead row(s) to ' + b.dataset.dest + ' will be sent again'; }); },
    'retry-failed-dest': function (b) { return api('POST', '/actions/destinations/' + encodeURIComponent(b.dataset.dest) + '/retry-failed').then(function (r) { return r.rows + ' failed row(s) to ' + b.dataset.dest + ' will be sent now'; }); },
    'retry-all-failed': function () { return api('POST', '/actions/outbox/retry-failed').then(function (r) { return r.rows + ' failed row(s) will be sent now'; }); },
    'retry-group': function (b) { return api('POST', '/actions/outbox/retry-failed', { destination: b.dataset.dest, studyRef: b.dataset.study, includeDead: true }).then(function (r) { return r.rows + ' row(s) of study ' + b.dataset.study + ' to ' + b.dataset.dest + ' will be sent again'; }); },
    'reprocess': function (b) { return api('POST', '/studies/' + encodeURIComponent(b.dataset.study) + '/reprocess').then(function (r) { return 'Study queued again as job ' + r.job.id; }); },
    'retry-handoffs': function () { return api('POST', '/actions/handoffs/retry-failed').then(function (r) { return r.jobs + ' hand-off(s) will be taken again'; }); },
    'reload-models': function () { return api('POST', '/actions/models/reload').then(function (r) { return 'Models reloaded: ' + r.models.filter(function (m) { return m.status === 'ready'; }).length + ' ready'; }); },
    'selftest': function () { return api('POST', '/actions/housekeeping/model-selftest').then(function (r) { return 'Self-test: ' + r.summary.passed + ' passed, ' + r.summary.failed + ' failed'; }); },
    'run-task': function (b) { return api('POST', '/actions/housekeeping/' + b.dataset.task).then(function () { return b.dataset.task + ' done'; }); },
  };
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest('button[data-action]');
    if (!b) return;
    var fn = ACTIONS[b.dataset.action];
    if (!fn || b.disabled) return;
    b.disabled = true;
    fn(b).then(function (msg) { toast(msg, 'ok'); }, function (e) { toast(e.message, 'error'); })
      .then(refresh)
      .then(function () { b.disabled = false; });
  });
  $('btn-logout').addEventListener('click', function () {
    fetch('/admin/logout', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: '{}' })
      .finally(function () { window.location.assign('/admin/login'); });
  });

  function loop() {
    if (busy || document.hidden) return;
    busy = true;
    refresh().then(function () { busy = false; });
  }
  loop();
  setInterval(loop, POLL_MS);
  document.addEventListener('visibilitychange', loop);
})();
