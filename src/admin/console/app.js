// certgate web console: plain JavaScript, no framework, no build step, nothing fetched from
// the internet. Served under a strict Content-Security-Policy, so: no inline scripts or styles,
// no innerHTML with data (every value goes in through textContent or a property), handlers
// attached with addEventListener.
'use strict';

(() => {
  const ROLE_RANK = { viewer: 0, operator: 1, admin: 2 };
  const EXPIRY_SOON_DAYS = 30;

  const state = {
    session: null, // {name, role, csrf, proxy}
    signedOutReason: null,
    flash: null, // {kind, title, lines[]} shown once at the top of the next page
    renderSeq: 0,
  };

  // ---------------------------------------------------------------- DOM helpers

  const PROPS = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'required', 'multiple', 'readOnly', 'htmlFor', 'tabIndex', 'open']);

  /** Build an element. Strings and numbers become text nodes; null/false are skipped. */
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
        else if (k === 'text') el.textContent = String(v);
        else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
        else if (k === 'for') el.htmlFor = v;
        else if (PROPS.has(k)) el[k] = v;
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    append(el, kids);
    return el;
  }

  function append(el, kids) {
    for (const kid of kids) {
      if (kid === null || kid === undefined || kid === false) continue;
      if (Array.isArray(kid)) append(el, kid);
      else if (kid instanceof Node) el.appendChild(kid);
      else el.appendChild(document.createTextNode(String(kid)));
    }
  }

  let idCounter = 0;
  const uid = (prefix) => `${prefix}-${++idCounter}`;

  const mainEl = () => document.getElementById('main');

  /** Replace an element's content (null/false kids are skipped, unlike replaceChildren). */
  function fill(el, ...kids) {
    el.textContent = '';
    append(el, kids);
    return el;
  }

  // ---------------------------------------------------------------- formatting

  /** RFC 3339 -> 2026-11-22 */
  const fmtDate = (iso) => (iso ? String(iso).slice(0, 10) : '');
  /** RFC 3339 -> 2026-11-22 12:45:37 UTC */
  const fmtDateTime = (iso) => (iso ? String(iso).replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC') : '');
  const plural = (n, one, many) => `${n} ${Math.abs(n) === 1 ? one : many || one + 's'}`;

  function daysText(days) {
    if (days < 0) return `expired ${plural(-days, 'day')} ago`;
    if (days === 0) return 'expires today';
    return plural(days, 'day');
  }

  /** Split a distinguished name on the commas that are not escaped. */
  function rdns(dn) {
    const out = [];
    let cur = '';
    const s = String(dn || '');
    for (let i = 0; i < s.length; i++) {
      const c = s[i];
      if (c === '\\' && i + 1 < s.length) {
        cur += c + s[i + 1];
        i++;
      } else if (c === ',') {
        if (cur.trim()) out.push(cur.trim());
        cur = '';
      } else cur += c;
    }
    if (cur.trim()) out.push(cur.trim());
    return out;
  }

  /** The CN of a distinguished name, or the whole name when it has none. */
  function cnOf(dn) {
    for (const part of rdns(dn)) {
      const m = /^CN\s*=\s*(.*)$/i.exec(part);
      if (m) return m[1].replace(/\\(.)/g, '$1');
    }
    return String(dn || '');
  }

  function keyText(c) {
    const named = { 'ec-p256': 'ECDSA P-256', 'ec-p384': 'ECDSA P-384', ed25519: 'Ed25519', ed448: 'Ed448' }[c.key_type];
    if (named) return named;
    if (c.key_type === 'rsa') return c.key_bits ? `RSA ${c.key_bits}` : 'RSA';
    return String(c.key_type || 'unknown');
  }

  // ---------------------------------------------------------------- certificate status

  /** How each warning code shows: severity and words (never colour alone). */
  const WARNINGS = {
    expired: { sev: 'bad', label: () => 'Expired' },
    'not-yet-valid': { sev: 'bad', label: () => 'Not yet valid' },
    'expires-soon': { sev: 'warn', label: (c) => (c.days_left <= 0 ? 'Expires today' : `Expires in ${plural(c.days_left, 'day')}`) },
    'incomplete-chain': { sev: 'bad', label: () => 'Incomplete chain' },
    'no-client-auth-eku': { sev: 'warn', label: () => 'Not for client auth' },
    'sha1-signature': { sev: 'warn', label: () => 'SHA-1 signature' },
  };
  const SEV_RANK = { ok: 0, warn: 1, bad: 2 };

  /** [{sev, label, title}] for a certificate view; one "OK" entry when nothing is wrong. */
  function statusOf(c) {
    const details = c.warning_details || [];
    const codes = c.warnings || details.map((d) => d.code);
    if (!codes.length) return [{ sev: 'ok', label: 'OK', title: 'no warnings' }];
    return codes.map((code) => {
      const w = WARNINGS[code] || { sev: 'warn', label: () => code.replace(/-/g, ' ') };
      const d = details.find((x) => x.code === code);
      return { sev: w.sev, label: w.label(c), title: d ? `${d.message} — ${d.remedy}` : code };
    });
  }

  const worstSev = (statuses) => statuses.reduce((w, s) => (SEV_RANK[s.sev] > SEV_RANK[w] ? s.sev : w), 'ok');

  function badge(sev, label, title) {
    return h('span', { class: `badge ${sev}`, title: title || null }, h('span', { class: 'icon', 'aria-hidden': 'true' }), label);
  }

  const isExpired = (c) => (c.warnings || []).includes('expired') || c.days_left < 0;
  const isExpiring = (c) => !isExpired(c) && ((c.warnings || []).includes('expires-soon') || c.days_left < EXPIRY_SOON_DAYS);
  const hasProblems = (c) => (c.warnings || []).some((w) => w !== 'expired' && w !== 'expires-soon');

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, body) {
      super(body.message || `HTTP ${status}`);
      this.status = status;
      this.code = body.error || `http-${status}`;
      this.hint = body.hint || '';
      this.action = body.action || null;
    }
  }

  // What a remedy's action (`{id, target}`, from the API or a probe report) opens in the console:
  // the page where a person does it, never a command line.
  const ACTION_LINKS = {
    'import-certificate': [() => '#/upload', 'Upload a certificate'],
    'rotate-certificate': [(t) => (t ? `#/certificates/${enc(t)}/rotate` : '#/'), 'Rotate the certificate'],
    'check-certificate': [(t) => (t ? `#/certificates/${enc(t)}` : '#/'), 'Open the certificate'],
    'remove-certificate': [(t) => (t ? `#/certificates/${enc(t)}` : '#/'), 'Open the certificate'],
    'list-certificates': [() => '#/', 'See the certificates'],
    'add-trust-anchor': [() => '#/trust', 'Add a trust anchor'],
    'list-trust-anchors': [() => '#/trust', 'See the trust anchors'],
    bind: [() => '#/bindings', 'Go to the bindings'],
    unbind: [() => '#/bindings', 'Go to the bindings'],
    'list-bindings': [() => '#/bindings', 'See the bindings'],
    'allow-renegotiation': [() => '#/bindings', 'Change the binding'],
    'add-service': [() => '#/bindings', 'Add a service'],
    'add-app': [() => '#/apps', 'Add an app'],
    grant: [() => '#/apps', 'Grant the certificate'],
    'create-token': [() => '#/tokens', 'Create a token'],
  };

  /** A link button for a remedy's action, or null when the console has no page for it. */
  function actionLink(action) {
    const known = action && ACTION_LINKS[action.id];
    if (!known) return null;
    const [href, label] = known;
    return h('a', { class: 'btn small remedy-action', href: href(action.target), 'data-action': action.id, text: label });
  }

  async function request(method, path, { json, form } = {}) {
    const headers = { Accept: 'application/json' };
    let body;
    if (form) body = form;
    else if (json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(json);
    }
    if (method !== 'GET' && method !== 'HEAD' && state.session) headers['X-CSRF-Token'] = state.session.csrf;
    let resp;
    try {
      resp = await fetch(path, { method, headers, body, credentials: 'same-origin', cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, {
        error: 'network',
        message: `certgate did not answer (${e.message})`,
        hint: 'check that certgate serve is running and that this address reaches its admin listener, then retry',
      });
    }
    const text = resp.status === 204 ? '' : await resp.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (!resp.ok) {
      const body = data && typeof data === 'object' && data.message
        ? data
        : { error: `http-${resp.status}`, message: `certgate answered ${resp.status} ${resp.statusText}`.trim(), hint: text.slice(0, 300) };
      const err = new ApiError(resp.status, body);
      if (resp.status === 401 && path.startsWith('/api/')) signedOut(err.message);
      throw err;
    }
    return data;
  }

  const api = {
    get: (path) => request('GET', `/api/v1${path}`),
    put: (path, json) => request('PUT', `/api/v1${path}`, { json }),
    post: (path, json) => request('POST', `/api/v1${path}`, { json }),
    del: (path) => request('DELETE', `/api/v1${path}`),
    upload: (method, path, form) => request(method, `/api/v1${path}`, { form }),
  };

  const enc = encodeURIComponent;

  // ---------------------------------------------------------------- session and roles

  /** host:port applications send to: the proxy listener's real address from the session answer
   *  (serve --proxy-listen); when it listens on every address, the host this browser reached. */
  function proxyAddress() {
    const m = /^(.*):(\d+)$/.exec((state.session && state.session.proxy) || '');
    if (!m) return `${location.hostname}:9780`;
    const everywhere = m[1] === '0.0.0.0' || m[1] === '[::]' || m[1] === '::';
    return `${everywhere ? location.hostname : m[1]}:${m[2]}`;
  }

  const can = (role) => !!state.session && ROLE_RANK[state.session.role] >= ROLE_RANK[role];

  function signedOut(reason) {
    if (!state.session) return;
    state.session = null;
    state.signedOutReason = reason;
    render();
  }

  async function signOut() {
    try {
      await request('POST', '/console/logout');
    } catch (_) {
      // Signed out locally either way.
    }
    state.session = null;
    state.signedOutReason = 'You are signed out.';
    location.hash = '#/';
    render();
  }

  /** A note for people whose role may look but not change. */
  function roleNote(role, what) {
    return h('p', { class: 'note role-note' },
      h('span', { class: 'icon lock', 'aria-hidden': 'true' }),
      `${what} needs the ${role} role; you are signed in as ${state.session.role}. Ask an admin for a token with that role.`);
  }

  // ---------------------------------------------------------------- shared components

  /** An alert area that explains a refusal in plain words, next to the form that caused it. */
  const ERROR_TITLES = {
    'wrong-password': 'Wrong password',
    'password-required': 'This file needs its password',
    'no-private-key': 'No private key in the file',
    'key-mismatch': 'The key does not belong to the certificate',
    malformed: 'The file cannot be read',
    'unsupported-algorithm': 'This key type is not supported',
    empty: 'The file is empty',
    'not-a-certificate': 'This is not a certificate',
    'too-large': 'The file is too large',
    'name-taken': 'That name is already in use',
    'still-bound': 'The certificate is still in use',
    'not-found': 'Not found',
    forbidden: 'Your role does not allow this',
    unauthorized: 'Not signed in',
    csrf: 'The page is out of date',
    usage: 'Not accepted',
    network: 'certgate did not answer',
  };

  function alertBox() {
    const el = h('div', { class: 'alert', role: 'alert', 'aria-live': 'assertive', hidden: true, id: uid('alert') });
    return {
      el,
      show(err, extra) {
        const title = err instanceof ApiError ? ERROR_TITLES[err.code] || 'Refused' : 'Something went wrong';
        const kids = [h('p', { class: 'alert-title' }, h('span', { class: 'icon', 'aria-hidden': 'true' }), title), h('p', { class: 'alert-message', text: err.message })];
        if (err.hint) kids.push(h('p', { class: 'alert-hint' }, h('strong', null, 'What to do: '), err.hint, err.action ? ' ' : null, actionLink(err.action)));
        if (extra) kids.push(extra);
        fill(el, ...kids);
        el.hidden = false;
      },
      message(title, text) {
        fill(el, h('p', { class: 'alert-title' }, h('span', { class: 'icon', 'aria-hidden': 'true' }), title), text ? h('p', { class: 'alert-message', text }) : null);
        el.hidden = false;
      },
      clear() {
        el.hidden = true;
        fill(el, );
      },
    };
  }

  function field(label, input, help) {
    if (!input.id) input.id = uid('f');
    let helpEl = null;
    if (help) {
      helpEl = h('p', { class: 'help', id: uid('help') }, help);
      input.setAttribute('aria-describedby', helpEl.id);
    }
    return h('div', { class: 'field' }, h('label', { for: input.id }, label), input, helpEl);
  }

  function section(title, ...kids) {
    const id = uid('sec');
    return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), ...kids);
  }

  function pageHeader(title, subtitle, ...actions) {
    return h('div', { class: 'page-head' },
      h('div', null, h('h1', { tabindex: '-1', text: title }), subtitle ? h('p', { class: 'subtitle' }, subtitle) : null),
      actions.length ? h('div', { class: 'actions' }, ...actions) : null);
  }

  function button(label, onClick, cls, attrs) {
    return h('button', Object.assign({ type: 'button', class: cls || 'btn', on: { click: onClick } }, attrs || {}), label);
  }

  /** Run an async action with the button busy; errors go to `alert`. */
  async function busy(btn, label, alert, fn) {
    const old = btn.textContent;
    btn.disabled = true;
    btn.setAttribute('aria-busy', 'true');
    btn.textContent = label;
    if (alert) alert.clear();
    try {
      return await fn();
    } catch (e) {
      if (alert) alert.show(e);
      else showToast(e.message, 'bad');
      return undefined;
    } finally {
      btn.disabled = false;
      btn.removeAttribute('aria-busy');
      btn.textContent = old;
    }
  }

  let toastTimer = null;
  function showToast(text, kind) {
    const t = document.getElementById('toast');
    t.className = `toast show ${kind || 'ok'}`;
    t.textContent = text;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      t.className = 'toast';
      t.textContent = '';
    }, 4000);
  }

  function flashPanel() {
    const f = state.flash;
    state.flash = null;
    if (!f) return null;
    return h('div', { class: `notice ${f.kind || 'ok'}`, role: 'status' },
      h('p', { class: 'notice-title' }, h('span', { class: 'icon', 'aria-hidden': 'true' }), f.title),
      (f.lines || []).map((l) => h('p', { text: l })));
  }

  /** A modal confirmation (native <dialog>): resolves true when confirmed. */
  function confirmDialog({ title, body, confirm, danger }) {
    return new Promise((resolve) => {
      const titleId = uid('dlg');
      const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': titleId });
      const done = (v) => {
        dlg.close();
        dlg.remove();
        resolve(v);
      };
      const ok = button(confirm || 'Confirm', () => done(true), danger ? 'btn danger' : 'btn primary');
      dlg.append(
        h('h2', { id: titleId, text: title }),
        ...(Array.isArray(body) ? body : [body]).map((b) => (b instanceof Node ? b : h('p', { text: b }))),
        h('div', { class: 'dialog-actions' }, button('Cancel', () => done(false), 'btn'), ok),
      );
      dlg.addEventListener('cancel', (e) => {
        e.preventDefault();
        done(false);
      });
      document.body.appendChild(dlg);
      dlg.showModal();
      ok.focus();
    });
  }

  async function copyText(text, input) {
    try {
      await navigator.clipboard.writeText(text);
      showToast('Copied to the clipboard');
    } catch (_) {
      if (input) {
        input.focus();
        input.select();
        const ok = document.execCommand && document.execCommand('copy');
        showToast(ok ? 'Copied to the clipboard' : 'Selected: press Ctrl+C to copy', ok ? 'ok' : 'warn');
      }
    }
  }

  /** A secret shown once, with copy buttons. */
  function secretPanel(onHide, title, lines, items) {
    const panel = h('div', { class: 'notice secret', role: 'status', tabindex: '-1' },
      h('p', { class: 'notice-title' }, h('span', { class: 'icon', 'aria-hidden': 'true' }), title),
      lines.map((l) => h('p', { text: l })));
    for (const { label, value } of items) {
      const input = h('input', { type: 'text', readOnly: true, value, class: 'mono', spellcheck: 'false', 'aria-label': label });
      panel.append(h('div', { class: 'copy-row' }, h('span', { class: 'copy-label', text: label }), input, button('Copy', () => copyText(value, input), 'btn small')));
    }
    panel.append(button('I have saved it — hide', () => {
      onHide();
      panel.remove();
    }, 'btn small quiet'));
    return panel;
  }

  function emptyRow(cols, text) {
    return h('tr', { class: 'empty' }, h('td', { colspan: String(cols) }, text));
  }

  function table(caption, headers, rows, cls) {
    return h('div', { class: 'table-wrap' },
      h('table', { class: cls || 'grid' },
        caption ? h('caption', { class: 'sr-only', text: caption }) : null,
        h('thead', null, h('tr', null, headers.map((t) => (t instanceof Node ? t : h('th', { scope: 'col', text: t }))))),
        h('tbody', null, rows)));
  }

  const certLink = (name) => h('a', { href: `#/certificates/${enc(name)}`, text: name });

  function readFileBase64(file) {
    return new Promise((resolve, reject) => {
      const r = new FileReader();
      r.onerror = () => reject(new Error(`the file ${file.name} cannot be read by the browser`));
      r.onload = () => {
        const bytes = new Uint8Array(r.result);
        let bin = '';
        for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
        resolve(btoa(bin));
      };
      r.readAsArrayBuffer(file);
    });
  }

  /** A name certgate accepts, derived from a file name. */
  function nameFromFile(fileName) {
    return fileName.replace(/\.(pfx|p12|pem|crt|cer|der|key)$/i, '').replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '').slice(0, 128);
  }

  /** The partner-trust picker: public, private, or named anchors. */
  function trustPicker(anchorNames, legendText) {
    const group = uid('trust');
    const radio = (value, label, help) => {
      const input = h('input', { type: 'radio', name: group, value, id: uid('r') });
      return { input, el: h('div', { class: 'choice' }, input, h('label', { for: input.id }, h('span', { class: 'choice-label', text: label }), help ? h('span', { class: 'choice-help', text: help }) : null)) };
    };
    const pub = radio('public', 'Public CAs', "the system's trusted roots, plus certgate's trust anchors (most partners)");
    const priv = radio('private', "certgate's trust anchors only", 'for partners whose server certificate comes from a private CA');
    const named = radio('ca', 'Only these trust anchors', null);
    const boxes = anchorNames.map((n) => {
      const input = h('input', { type: 'checkbox', value: n, id: uid('c') });
      return { input, el: h('div', { class: 'choice sub' }, input, h('label', { for: input.id, text: n })) };
    });
    const anchorsEl = h('div', { class: 'anchor-choices' },
      boxes.length ? boxes.map((b) => b.el) : h('p', { class: 'help' }, 'No trust anchors yet: add the partner\'s CA on the ', h('a', { href: '#/trust', text: 'Trust anchors' }), ' page.'));
    if (!boxes.length) named.input.disabled = true;
    const fs = h('fieldset', { class: 'trust' }, h('legend', { text: legendText || "Trust the partner's server certificate if it comes from" }), pub.el, priv.el, named.el, anchorsEl);
    const sync = () => {
      for (const b of boxes) b.input.disabled = fs.disabled || !named.input.checked;
    };
    for (const r of [pub, priv, named]) r.input.addEventListener('change', sync);
    const api = {
      el: fs,
      set(value) {
        const v = String(value || 'public');
        pub.input.checked = v === 'public';
        priv.input.checked = v === 'private';
        named.input.checked = v.startsWith('ca:');
        const list = v.startsWith('ca:') ? v.slice(3).split(',') : [];
        for (const b of boxes) b.input.checked = list.includes(b.input.value);
        sync();
      },
      value() {
        if (priv.input.checked) return 'private';
        if (named.input.checked) {
          const list = boxes.filter((b) => b.input.checked).map((b) => b.input.value);
          return list.length ? `ca:${list.join(',')}` : '';
        }
        return 'public';
      },
      setDisabled(d) {
        fs.disabled = d;
        sync();
      },
      focus() {
        (pub.input.checked ? pub : priv.input.checked ? priv : named).input.focus();
      },
    };
    api.set('public');
    return api;
  }

  function trustText(t) {
    if (t === 'public') return 'public CAs';
    if (t === 'private') return "certgate's anchors";
    if (String(t).startsWith('ca:')) return `anchors: ${String(t).slice(3).split(',').join(', ')}`;
    return String(t);
  }

  // ---------------------------------------------------------------- sign in

  function loginPage(view) {
    document.title = 'Sign in · certgate';
    const alert = alertBox();
    const token = h('input', { type: 'password', name: 'token', autocomplete: 'off', spellcheck: 'false', required: true, class: 'mono', placeholder: 'cgt_…' });
    const submit = h('button', { type: 'submit', class: 'btn primary wide' }, 'Sign in');
    const form = h('form', { class: 'login-form', novalidate: true },
      field('Access token', token, 'Paste the token that certgate printed when it was created.'),
      alert.el,
      submit);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!token.value.trim()) {
        alert.message('Paste a token first', 'The token starts with cgt_ and is printed once when it is created.');
        token.focus();
        return;
      }
      await busy(submit, 'Signing in…', alert, async () => {
        const s = await request('POST', '/console/login', { json: { token: token.value.trim() } });
        state.session = s;
        state.signedOutReason = null;
        token.value = '';
        if (!location.hash || location.hash === '#/login') location.hash = '#/';
        render();
      });
      if (!state.session) {
        token.setAttribute('aria-invalid', 'true');
        token.focus();
        token.select();
      }
    });
    const reason = state.signedOutReason;
    fill(view, h('div', { class: 'login' },
      h('div', { class: 'login-card' },
        h('div', { class: 'brand big' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), h('span', null, 'certgate')),
        h('h1', { tabindex: '-1', text: 'Sign in to the console' }),
        h('p', { class: 'subtitle', text: 'Client certificates for your partner integrations: upload, check, bind, and watch expiry.' }),
        reason ? h('p', { class: 'notice info', role: 'status', text: reason }) : null,
        form),
      h('aside', { class: 'login-help', 'aria-label': 'Where to get a token' },
        h('h2', { text: 'Where do I get a token?' }),
        h('p', { text: 'On the server where certgate runs, an administrator creates one. It is printed once; keep it in your password manager:' }),
        h('pre', { class: 'cmd' }, h('code', { text: 'certgate token create YOUR-NAME --role admin' })),
        h('p', { text: 'Pick the smallest role that does the job:' }),
        h('ul', { class: 'roles' },
          h('li', null, h('strong', null, 'viewer'), ' — sees certificates, bindings, apps and the audit log'),
          h('li', null, h('strong', null, 'operator'), ' — also binds certificates to hosts and services, and manages apps'),
          h('li', null, h('strong', null, 'admin'), ' — also uploads and removes certificates, trust anchors and tokens')),
        h('p', { class: 'help', text: 'Signing in exchanges the token for a session cookie that lasts 8 hours; the console does not keep the token.' }))));
    token.focus();
  }

  // ---------------------------------------------------------------- dashboard

  async function dashboardPage(view) {
    document.title = 'Certificates · certgate';
    // /readyz answers 503 with the same JSON while the route table is not loaded.
    const readyz = fetch('/readyz', { cache: 'no-store' }).then((r) => r.json()).catch(() => null);
    const [certs, ready] = await Promise.all([api.get('/certificates'), readyz]);
    const counts = {
      all: certs.length,
      expiring: certs.filter(isExpiring).length,
      expired: certs.filter(isExpired).length,
      problems: certs.filter(hasProblems).length,
    };
    let filter = 'all';
    let query = '';
    let sort = { key: 'name', dir: 1 };

    const card = (key, label, sub, sev) => {
      const b = h('button', { type: 'button', class: ['stat', sev && counts[key] ? sev : null], 'aria-pressed': key === filter ? 'true' : 'false', 'data-filter': key },
        h('span', { class: 'stat-num', text: String(counts[key]) }), h('span', { class: 'stat-label', text: label }), h('span', { class: 'stat-sub', text: sub }));
      b.addEventListener('click', () => {
        filter = filter === key && key !== 'all' ? 'all' : key;
        for (const c of cards.querySelectorAll('.stat')) c.setAttribute('aria-pressed', c.dataset.filter === filter ? 'true' : 'false');
        draw();
      });
      return b;
    };
    const cards = h('div', { class: 'stats', role: 'group', 'aria-label': 'Certificate counts (click to filter)' },
      card('all', 'Certificates', 'in the store'),
      card('expiring', 'Expiring', `within ${EXPIRY_SOON_DAYS} days`, 'warn'),
      card('expired', 'Expired', 'partners refuse them', 'bad'),
      card('problems', 'With problems', 'chain, purpose, signature', 'bad'));

    const search = h('input', { type: 'search', placeholder: 'Filter by name, subject or owner', 'aria-label': 'Filter certificates', class: 'search' });
    search.addEventListener('input', () => {
      query = search.value.trim().toLowerCase();
      draw();
    });

    const columns = [
      ['name', 'Name', (c) => c.name],
      ['cn', 'Subject (CN)', (c) => cnOf(c.subject).toLowerCase()],
      ['expires', 'Expires', (c) => c.days_left],
      ['days', 'Days left', (c) => c.days_left],
      ['key', 'Key', (c) => keyText(c)],
      ['owner', 'Owner', (c) => (c.owner || '').toLowerCase()],
      ['bindings', 'Bindings', (c) => (c.bindings || []).length],
      ['status', 'Status', (c) => -SEV_RANK[worstSev(statusOf(c))]],
    ];
    const thead = h('tr');
    const tbody = h('tbody');
    const countLine = h('p', { class: 'muted count-line', 'aria-live': 'polite' });
    const drawHead = () => {
      fill(thead, ...columns.map(([key, label]) => {
        const active = sort.key === key;
        const btn = h('button', { type: 'button', class: 'sort' }, label, h('span', { class: ['sort-mark', active ? (sort.dir > 0 ? 'asc' : 'desc') : null], 'aria-hidden': 'true' }));
        btn.addEventListener('click', () => {
          sort = { key, dir: active ? -sort.dir : 1 };
          drawHead();
          draw();
        });
        return h('th', { scope: 'col', 'aria-sort': active ? (sort.dir > 0 ? 'ascending' : 'descending') : null }, btn);
      }));
    };
    const draw = () => {
      const keyFn = columns.find((c) => c[0] === sort.key)[2];
      const shown = certs
        .filter((c) => filter === 'all' || (filter === 'expiring' && isExpiring(c)) || (filter === 'expired' && isExpired(c)) || (filter === 'problems' && hasProblems(c)))
        .filter((c) => !query || [c.name, c.subject, c.owner || ''].some((t) => String(t).toLowerCase().includes(query)))
        .sort((a, b) => {
          const x = keyFn(a);
          const y = keyFn(b);
          return (x < y ? -1 : x > y ? 1 : a.name < b.name ? -1 : 1) * sort.dir;
        });
      fill(tbody, ...shown.map((c) => {
        const st = statusOf(c);
        const sev = worstSev(st);
        const n = (c.bindings || []).length;
        return h('tr', { class: `sev-${sev}`, 'data-cert': c.name },
          h('th', { scope: 'row' }, certLink(c.name)),
          h('td', { class: 'cn', title: c.subject, text: cnOf(c.subject) }),
          h('td', { class: 'nowrap', text: fmtDate(c.not_after) }),
          h('td', { class: ['nowrap', 'num', c.days_left < 0 ? 'bad-text' : c.days_left < EXPIRY_SOON_DAYS ? 'warn-text' : null], text: daysText(c.days_left) }),
          h('td', { class: 'nowrap', text: keyText(c) }),
          h('td', { text: c.owner || '—' }),
          h('td', { class: 'num', title: (c.bindings || []).join(', ') || null, text: String(n) }),
          h('td', { class: 'status' }, st.map((s) => badge(s.sev, s.label, s.title))));
      }));
      if (!shown.length) {
        tbody.append(emptyRow(columns.length, certs.length ? 'No certificate matches this filter.' : 'No certificates yet.'));
      }
      countLine.textContent = shown.length === certs.length ? `${plural(certs.length, 'certificate')}` : `Showing ${shown.length} of ${certs.length}`;
    };
    drawHead();
    draw();

    let gateway = null;
    if (ready && typeof ready === 'object') {
      gateway = h('p', { class: ['gateway-state', ready.ready ? 'ok' : 'bad'] },
        h('span', { class: 'dot', 'aria-hidden': 'true' }),
        ready.ready ? `Gateway ready — route table revision ${ready.revision}, ${plural(ready.bindings || 0, 'binding')}` : 'Gateway not ready',
        ready.last_reload_error ? ` — last reload failed: ${ready.last_reload_error}` : '');
    }

    const empty = !certs.length
      ? h('div', { class: 'notice info' },
        h('p', { class: 'notice-title', text: 'No certificates yet' }),
        h('p', { text: 'Upload the .pfx / .p12 (or PEM) file your partner or CA gave you. certgate checks the password, the chain and the expiry, and seals the private key.' }),
        can('admin') ? h('p', null, h('a', { class: 'btn primary', href: '#/upload', text: 'Upload a certificate' })) : roleNote('admin', 'Uploading a certificate'))
      : null;

    fill(view, 
      pageHeader('Certificates', 'Every client certificate in the store, with expiry and status at a glance.',
        can('admin') ? h('a', { class: 'btn primary', href: '#/upload', text: 'Upload certificate' }) : null),
      flashPanel(),
      cards,
      gateway,
      empty,
      certs.length ? h('div', { class: 'panel flush' },
        h('div', { class: 'table-tools' }, search, countLine),
        h('div', { class: 'table-wrap' }, h('table', { class: 'grid certs' }, h('caption', { class: 'sr-only', text: 'Certificates' }), h('thead', null, thead), tbody))) : null,
    );
  }

  // ---------------------------------------------------------------- certificate page

  async function certificatePage(view, name) {
    const [c, check] = await Promise.all([api.get(`/certificates/${enc(name)}`), api.get(`/certificates/${enc(name)}/check`)]);
    document.title = `${c.name} · certgate`;
    const st = statusOf(c);

    const exportLinks = h('div', { class: 'export', role: 'group', 'aria-label': 'Export the public certificate' },
      h('a', { class: 'btn small', href: `/api/v1/certificates/${enc(name)}/export?format=der`, download: `${name}.cer`, text: '.cer (DER)' }),
      h('a', { class: 'btn small', href: `/api/v1/certificates/${enc(name)}/export?format=pem`, download: `${name}.pem`, text: 'PEM' }),
      h('a', { class: 'btn small', href: `/api/v1/certificates/${enc(name)}/export?format=pem&chain=true`, download: `${name}-chain.pem`, text: 'PEM with chain' }));

    const removeAlert = alertBox();
    const remove = async (force) => {
      const bound = c.bindings || [];
      const body = [`This deletes certificate '${name}' and its sealed private key from the store.`];
      if (bound.length) body.push(force ? `Its bindings (${bound.join(', ')}) are removed too; calls to those partners then go out without this certificate.` : `It is bound to ${bound.join(', ')}.`);
      body.push('This cannot be undone (the audit log keeps a record).');
      const ok = await confirmDialog({ title: `Remove ${name}?`, body, confirm: force ? 'Remove with its bindings' : 'Remove certificate', danger: true });
      if (!ok) return;
      removeAlert.clear();
      try {
        await api.del(`/certificates/${enc(name)}${force ? '?force=true' : ''}`);
        state.flash = { kind: 'ok', title: `Removed certificate '${name}'` };
        location.hash = '#/';
      } catch (e) {
        const extra = e.code === 'still-bound' && !force ? h('p', null, button('Remove it and its bindings…', () => remove(true), 'btn danger small')) : null;
        removeAlert.show(e, extra);
      }
    };

    const actions = [];
    if (can('admin')) {
      actions.push(h('a', { class: 'btn', href: `#/certificates/${enc(name)}/rotate`, text: 'Rotate (new file)…' }));
      actions.push(button('Remove…', () => remove(false), 'btn danger'));
    }

    const clientAuth = c.client_auth_eku === true ? 'yes — TLS client authentication' : c.client_auth_eku === false ? 'no — the certificate is not issued for client authentication' : 'not restricted (no extended key usage)';
    const facts = h('dl', { class: 'facts' },
      [
        ['Subject', c.subject],
        ['Issuer', c.issuer],
        ['Serial', h('span', { class: 'mono', text: c.serial })],
        ['Valid from', fmtDateTime(c.not_before)],
        ['Valid until', h('span', null, fmtDateTime(c.not_after), ' ', h('span', { class: c.days_left < 0 ? 'bad-text' : c.days_left < EXPIRY_SOON_DAYS ? 'warn-text' : 'muted', text: `(${daysText(c.days_left)})` }))],
        ['Key', `${keyText(c)}${check && check.key ? ` — ${check.key.detail}` : ''}`],
        ['TLS engine', c.engine === 'openssl' ? `OpenSSL — ${c.engine_reason}` : 'rustls (the default)'],
        ['clientAuth', clientAuth],
        ['Alternative names', c.alt_names && c.alt_names.length ? h('ul', { class: 'plain' }, c.alt_names.map((n) => h('li', { text: n }))) : 'none'],
        ['Owner', c.owner || '—'],
        ['Id (SHA-256)', h('span', { class: 'mono break', text: c.id })],
        ['Imported', fmtDateTime(c.created_at)],
        ['Last changed', fmtDateTime(c.updated_at)],
      ].map(([k, v]) => [h('dt', { text: k }), h('dd', null, v)]));

    // The chain: leaf <- intermediates <- root, with where each came from.
    const chainItems = [];
    const links = (check && check.path) || [];
    links.forEach((l, i) => {
      const role = i === 0 ? 'This certificate' : l.self_signed ? 'Root CA' : 'Intermediate CA';
      chainItems.push(h('li', { class: ['chain-link', i === 0 ? 'leaf' : l.self_signed ? 'root' : 'inter'] },
        h('span', { class: 'chain-role', text: role }),
        h('span', { class: 'chain-subject', title: l.subject, text: cnOf(l.subject) }),
        h('span', { class: 'chain-dn', text: l.subject }),
        h('span', { class: 'chain-source', text: i === 0 ? 'the certificate itself' : `found: ${l.source}` })));
    });
    if (check && check.missing_issuer) {
      chainItems.push(h('li', { class: 'chain-link missing' },
        h('span', { class: 'chain-role', text: 'Missing issuer' }),
        h('span', { class: 'chain-subject', title: check.missing_issuer, text: cnOf(check.missing_issuer) }),
        h('span', { class: 'chain-dn', text: check.missing_issuer }),
        h('span', { class: 'chain-source' }, 'not in the file and not in the store: ',
          can('admin') ? h('a', { href: '#/trust', text: 'add it as a trust anchor' }) : 'an admin can add it as a trust anchor',
          ' or rotate with a file that includes the chain')));
    }
    let endNote;
    if (!check) endNote = h('p', { class: 'muted', text: 'The chain could not be checked.' });
    else if (check.path_end === 'root') endNote = h('p', { class: 'ok-text' }, badge('ok', 'Complete'), ` The chain reaches its root; signatures: ${check.signatures}.`);
    else endNote = h('p', null, badge('bad', 'Incomplete'), ` The chain ends at: ${check.path_end}. Signatures: ${check.signatures}.`);

    const problems = (check && check.problems) || c.warning_details || [];
    const problemsEl = problems.length
      ? h('ul', { class: 'problems' }, problems.map((p) => {
        const w = WARNINGS[p.code] || { sev: 'warn', label: () => p.code };
        return h('li', { class: `problem ${w.sev}` },
          badge(w.sev, w.label(c)),
          h('p', { class: 'problem-message', text: p.message }),
          h('p', { class: 'problem-remedy' }, h('strong', null, 'What to do: '), p.remedy));
      }))
      : h('p', { class: 'ok-text' }, badge('ok', 'No problems'), ' Key, chain, validity and purpose look right.');

    const keyProblem = check && check.key && (!check.key.present || !check.key.matches)
      ? h('p', { class: 'notice bad', text: `Private key: ${check.key.detail}` }) : null;

    // Bindings of this certificate, and a quick bind form.
    const bindings = c.bindings || [];
    const bindingList = bindings.length
      ? h('ul', { class: 'chips' }, bindings.map((d) => h('li', { class: 'chip' }, d.startsWith('service:') ? h('a', { href: '#/bindings', text: `service ${d.slice(8)}` }) : h('a', { href: '#/bindings', text: d }))))
      : h('p', { class: 'muted', text: 'Not bound yet: applications calling a partner through certgate do not present this certificate anywhere.' });
    let bindForm = null;
    if (can('operator')) {
      const anchors = await api.get('/trust-anchors').catch(() => []);
      bindForm = quickBindForm(name, anchors.map((a) => a.name));
    }

    fill(view, 
      h('p', { class: 'crumbs' }, h('a', { href: '#/', text: 'Certificates' }), ' / ', h('span', { text: name })),
      pageHeader(c.name, cnOf(c.subject), ...actions),
      flashPanel(),
      h('div', { class: 'badges-line' }, st.map((s) => badge(s.sev, s.label, s.title))),
      removeAlert.el,
      keyProblem,
      h('div', { class: 'cols' },
        h('div', { class: 'col' },
          section('Facts', facts),
          section('Export', h('p', { class: 'help', text: 'The public certificate, e.g. to send to the partner who must allow it. The private key never leaves certgate.' }), exportLinks)),
        h('div', { class: 'col' },
          section('Problems', problemsEl),
          section('Chain to the root', h('ol', { class: 'chain', 'aria-label': 'Certification path, leaf first' }, chainItems), endNote),
          section('Bindings', bindingList, bindForm || (can('operator') ? null : roleNote('operator', 'Binding a certificate')))),
      ),
    );
  }

  function quickBindForm(certName, anchorNames) {
    const alert = alertBox();
    const dest = h('input', { type: 'text', name: 'destination', required: true, placeholder: 'api.partner.example', autocomplete: 'off', spellcheck: 'false' });
    const trust = trustPicker(anchorNames);
    const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Bind');
    const form = h('form', { class: 'form compact', 'aria-label': `Bind ${certName} to a partner host` },
      h('h3', { text: 'Bind to a partner host' }),
      field('Partner host', dest, 'host, host:port, *.domain or a URL; calls to it will present this certificate'),
      trust.el, alert.el, h('div', { class: 'form-actions' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const t = trust.value();
      if (!dest.value.trim()) return alert.message('Name the partner host', 'e.g. api.partner.example');
      if (!t) return alert.message('Pick at least one trust anchor', 'or choose Public CAs');
      await busy(submit, 'Binding…', alert, async () => {
        const v = await api.put(`/bindings/${enc(dest.value.trim())}`, { certificate: certName, trust: t });
        state.flash = { kind: 'ok', title: `Bound ${v.destination} to ${certName}`, lines: v.reduced_from ? [`The URL ${v.reduced_from} was reduced to ${v.destination}.`] : [] };
        render();
      });
    });
    return form;
  }

  // ---------------------------------------------------------------- upload and rotate

  function uploadForm({ rotate }) {
    const alert = alertBox();
    const name = h('input', { type: 'text', name: 'name', required: !rotate, autocomplete: 'off', spellcheck: 'false', maxlength: '128', pattern: '[A-Za-z0-9._-]+', placeholder: 'billing-client' });
    const file = h('input', { type: 'file', name: 'file', required: true, accept: '.pfx,.p12,.pem,.crt,.cer,.der' });
    const password = h('input', { type: 'password', name: 'password', autocomplete: 'off' });
    const key = h('input', { type: 'file', name: 'key', accept: '.key,.pem,.der' });
    const owner = h('input', { type: 'text', name: 'owner', autocomplete: 'off', placeholder: 'payments team, jane@example.com' });
    const submit = h('button', { type: 'submit', class: 'btn primary' }, rotate ? 'Rotate and check' : 'Upload and check');
    let nameTouched = false;
    name.addEventListener('input', () => {
      nameTouched = true;
    });
    file.addEventListener('change', () => {
      const f = file.files[0];
      if (!rotate && f && (!nameTouched || !name.value)) name.value = nameFromFile(f.name);
    });
    const invalidate = (input, yes) => {
      if (yes) {
        input.setAttribute('aria-invalid', 'true');
        input.setAttribute('aria-errormessage', alert.el.id);
      } else {
        input.removeAttribute('aria-invalid');
        input.removeAttribute('aria-errormessage');
      }
    };
    const form = h('form', { class: 'form', novalidate: true, 'aria-label': rotate ? `Rotate ${rotate}` : 'Upload a certificate' },
      rotate ? null : field('Name', name, "How bindings and apps refer to it: letters, digits, '.', '_' or '-'."),
      field('Certificate file', file, '.pfx / .p12 (Windows, Java, OpenSSL), or PEM / DER (.pem .crt .cer .der). The format is detected from the content.'),
      field('Password', password, 'The password set when the file was exported. Leave it empty for a file without one.'),
      h('details', { class: 'more' },
        h('summary', { text: 'The private key is in a separate file' }),
        field('Private key file (optional)', key, 'For PEM or DER certificates whose key is in its own file (.key).')),
      field('Owner (optional)', owner, 'The team or person who renews it; shown on the dashboard.'),
      alert.el,
      h('div', { class: 'form-actions' }, submit, h('a', { class: 'btn quiet', href: rotate ? `#/certificates/${enc(rotate)}` : '#/', text: 'Cancel' })));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      alert.clear();
      for (const i of [name, file, password]) invalidate(i, false);
      const target = rotate || name.value.trim();
      if (!target) {
        invalidate(name, true);
        alert.message('Give the certificate a name', "letters, digits, '.', '_' or '-', e.g. billing-client");
        name.focus();
        return;
      }
      if (!file.files.length) {
        invalidate(file, true);
        alert.message('Choose the certificate file', 'the .pfx, .p12, .pem, .crt, .cer or .der file');
        file.focus();
        return;
      }
      const fd = new FormData();
      if (!rotate) fd.append('name', target);
      fd.append('file', file.files[0], file.files[0].name);
      fd.append('password', password.value);
      if (key.files.length) fd.append('key', key.files[0], key.files[0].name);
      if (owner.value.trim()) fd.append('owner', owner.value.trim());
      let failed = null;
      const view = await busy(submit, rotate ? 'Rotating…' : 'Checking…', null, async () => {
        try {
          return await api.upload(rotate ? 'PUT' : 'POST', rotate ? `/certificates/${enc(rotate)}` : '/certificates', fd);
        } catch (err) {
          failed = err;
          return undefined;
        }
      });
      if (failed) {
        alert.show(failed);
        if (['wrong-password', 'password-required'].includes(failed.code)) {
          invalidate(password, true);
          password.focus();
          password.select();
        } else if (failed.code === 'name-taken' || (failed.code === 'usage' && /name/i.test(failed.message))) {
          invalidate(name, true);
          name.focus();
        } else {
          invalidate(file, true);
        }
        return;
      }
      const lines = [];
      // 'already-stored' is about this import (the same certificate under another name), so it
      // is said here; the certificate's own problems are on the page it opens.
      const details = view.warning_details || [];
      const own = details.filter((w) => w.code !== 'already-stored');
      for (const w of details.filter((w) => w.code === 'already-stored')) lines.push(`${w.message}. ${w.remedy}.`);
      if (own.length) lines.push(`${plural(own.length, 'problem')} found: see below.`);
      for (const n of view.notes || []) lines.push(n);
      state.flash = { kind: details.length ? 'warn' : 'ok', title: rotate ? `Rotated '${view.name}': its bindings now present the new certificate` : `Imported '${view.name}'`, lines };
      location.hash = `#/certificates/${enc(view.name)}`;
    });
    return { form, focus: () => (rotate ? file : name).focus() };
  }

  async function uploadPage(view) {
    document.title = 'Upload · certgate';
    if (!can('admin')) {
      fill(view, pageHeader('Upload a certificate'), roleNote('admin', 'Uploading a certificate'));
      return;
    }
    const { form, focus } = uploadForm({});
    fill(view, 
      h('p', { class: 'crumbs' }, h('a', { href: '#/', text: 'Certificates' }), ' / ', h('span', { text: 'Upload' })),
      pageHeader('Upload a certificate', 'certgate opens the file with its password, checks the key, the chain to the root and the expiry, then seals the private key.'),
      h('div', { class: 'cols form-cols' },
        h('div', { class: 'col' }, h('div', { class: 'panel' }, form)),
        h('aside', { class: 'col side', 'aria-label': 'Tips' }, h('div', { class: 'panel tips' },
          h('h2', { text: 'Tips' }),
          h('ul', null,
            h('li', null, 'From Windows: export with ', h('em', { text: 'Yes, export the private key' }), ' and ', h('em', { text: 'Include all certificates in the certification path' }), ' to get a .pfx with its chain.'),
            h('li', { text: 'The password is sent once to certgate to open the file; certgate does not keep it.' }),
            h('li', { text: 'A missing intermediate CA shows up as a problem after the upload; add it on the Trust anchors page.' }),
            h('li', { text: 'To replace a certificate that is already bound, open it and use Rotate: bindings keep working.' }))))));
    focus();
  }

  async function rotatePage(view, name) {
    const c = await api.get(`/certificates/${enc(name)}`);
    document.title = `Rotate ${name} · certgate`;
    if (!can('admin')) {
      fill(view, pageHeader(`Rotate ${name}`), roleNote('admin', 'Rotating a certificate'));
      return;
    }
    const { form, focus } = uploadForm({ rotate: name });
    fill(view, 
      h('p', { class: 'crumbs' }, h('a', { href: '#/', text: 'Certificates' }), ' / ', certLink(name), ' / ', h('span', { text: 'Rotate' })),
      pageHeader(`Rotate ${name}`, 'Replace the certificate and key under the same name: bindings and grants stay, and the gateway switches within a second.'),
      h('div', { class: 'cols form-cols' },
        h('div', { class: 'col' }, h('div', { class: 'panel' }, form)),
        h('aside', { class: 'col side', 'aria-label': 'Current certificate' }, h('div', { class: 'panel' },
          h('h2', { text: 'Now in use' }),
          h('dl', { class: 'facts small' },
            h('dt', { text: 'Subject' }), h('dd', { text: cnOf(c.subject) }),
            h('dt', { text: 'Expires' }), h('dd', { text: `${fmtDate(c.not_after)} (${daysText(c.days_left)})` }),
            h('dt', { text: 'Bound to' }), h('dd', { text: (c.bindings || []).join(', ') || 'nothing' }))))));
    focus();
  }

  // ---------------------------------------------------------------- trust anchors

  async function trustPage(view) {
    document.title = 'Trust anchors · certgate';
    const anchors = await api.get('/trust-anchors');
    const listAlert = alertBox();
    const rows = anchors.map((a) => {
      const certs = a.certificates || [];
      const first = certs.map((x) => x.not_after).sort()[0];
      const removeBtn = can('admin') ? button('Remove…', async () => {
        const ok = await confirmDialog({ title: `Remove trust anchor ${a.name}?`, body: ['Bindings with a trust policy that names it stop accepting partners it vouched for, and certificate chains that ended at it become incomplete.'], confirm: 'Remove anchor', danger: true });
        if (!ok) return;
        await busy(removeBtn, 'Removing…', listAlert, async () => {
          await api.del(`/trust-anchors/${enc(a.name)}`);
          state.flash = { kind: 'ok', title: `Removed trust anchor '${a.name}'` };
          render();
        });
      }, 'btn small danger', { 'aria-label': `Remove trust anchor ${a.name}` }) : null;
      return h('tr', null,
        h('th', { scope: 'row', text: a.name }),
        h('td', null, h('ul', { class: 'plain' }, certs.map((x) => h('li', { title: x.subject }, cnOf(x.subject), ' ', h('span', { class: 'muted', text: x.self_signed ? '(root)' : x.is_ca ? '(intermediate CA)' : '(not a CA)' }))))),
        h('td', { class: 'nowrap', text: first ? fmtDate(first) : '—' }),
        h('td', null, (a.warnings || []).length ? (a.warnings || []).map((w) => h('p', { class: 'warn-text small' }, badge('warn', 'Warning'), ' ', w)) : badge('ok', 'OK')),
        h('td', { class: 'nowrap', text: fmtDate(a.created_at) }),
        can('admin') ? h('td', { class: 'row-actions' }, removeBtn) : null);
    });
    const headers = ['Name', 'CA certificates', 'Expires', 'Warnings', 'Added'];
    if (can('admin')) headers.push(h('th', { scope: 'col' }, h('span', { class: 'sr-only', text: 'Actions' })));

    let addForm;
    if (can('admin')) {
      const alert = alertBox();
      const name = h('input', { type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'partner-root' });
      const file = h('input', { type: 'file', required: true, accept: '.pem,.crt,.cer,.der' });
      const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Add trust anchor');
      file.addEventListener('change', () => {
        if (file.files[0] && !name.value) name.value = nameFromFile(file.files[0].name);
      });
      addForm = h('form', { class: 'form', novalidate: true, 'aria-label': 'Add a trust anchor' },
        field('Name', name, 'How bindings refer to it, e.g. in the trust policy ca:partner-root.'),
        field('CA certificate file', file, 'PEM or DER (.pem .crt .cer): the partner\'s root or intermediate CA, or the intermediate your client certificate is missing.'),
        alert.el, h('div', { class: 'form-actions' }, submit));
      addForm.addEventListener('submit', async (e) => {
        e.preventDefault();
        if (!name.value.trim()) return alert.message('Give the anchor a name', 'e.g. partner-root');
        if (!file.files.length) return alert.message('Choose the CA certificate file', '.pem, .crt, .cer or .der');
        await busy(submit, 'Adding…', alert, async () => {
          const content = await readFileBase64(file.files[0]);
          const v = await api.post('/trust-anchors', { name: name.value.trim(), content });
          state.flash = { kind: (v.warnings || []).length ? 'warn' : 'ok', title: `Added trust anchor '${v.name}'`, lines: v.warnings || [] };
          render();
        });
      });
    }
    fill(view, 
      pageHeader('Trust anchors', 'CA certificates certgate trusts: to verify partners whose server certificate comes from a private CA, and to complete client-certificate chains.'),
      flashPanel(),
      listAlert.el,
      h('div', { class: 'panel flush' }, table('Trust anchors', headers, rows.length ? rows : [emptyRow(headers.length, 'No trust anchors: partners are verified against the system\'s public CAs.')])),
      addForm ? section('Add a trust anchor', addForm) : roleNote('admin', 'Adding a trust anchor'));
  }


  // ---------------------------------------------------------------- test connection (probe)

  /** The probe report in plain words: trusted or not, what the partner asked for, which
   *  certificate goes out and whether it fits, the outcome, and each problem with what to do
   *  (the remedy's words, never a command line). */
  function probeReportView(r, what) {
    const works = r.ok;
    const rows = [];
    const row = (label, ...kids) => rows.push(h('dt', { text: label }), h('dd', null, ...kids));
    row('Partner', `${r.host}:${r.port}`, r.connect ? h('span', { class: 'muted', text: ` — reached ${r.connect.address} in ${r.connect.millis} ms` }) : null);
    if (r.tls && r.tls.version) row('Connection', `${r.tls.version}${r.tls.alpn ? `, ${r.tls.alpn === 'h2' ? 'HTTP/2' : r.tls.alpn}` : ''}`);
    if (r.partner) {
      const leaf = r.partner.chain[0];
      const who = leaf ? ` — ${cnOf(leaf.subject) || leaf.subject}, issued by ${cnOf(leaf.issuer) || leaf.issuer}, ${leaf.days_left > 0 ? `${daysText(leaf.days_left)} left` : daysText(leaf.days_left)}` : '';
      row('Partner certificate', r.partner.trusted ? badge('ok', 'Trusted') : badge('bad', 'Not trusted'), who,
        r.partner.trusted ? null : h('p', { class: 'small', text: r.partner.message || '' }));
    } else if (!r.connect) {
      row('Partner certificate', h('span', { class: 'muted', text: 'not reached' }));
    }
    const cc = r.client_certificate;
    let asked;
    if (!r.partner && !r.tls) asked = 'unknown (the handshake did not get that far)';
    else if (!cc.requested) asked = 'The partner did not ask for a client certificate during the handshake.';
    else if (cc.acceptable_cas.length) asked = `The partner asks for a client certificate issued by: ${cc.acceptable_cas.map((n) => cnOf(n) || n).join('; ')}.`;
    else asked = 'The partner asks for a client certificate and names no CA (it accepts any it trusts).';
    row('Client certificate asked', asked,
      cc.requested && cc.matching.length ? h('p', { class: 'small', text: `Stored certificates it would accept: ${cc.matching.join(', ')}.` }) : null);
    let sent;
    if (!cc.sent) sent = [h('span', { text: 'certgate sends no certificate' })];
    else if (cc.sent_acceptable === true) sent = [h('span', { class: 'mono', text: cc.sent }), ' ', badge('ok', 'Acceptable to the partner')];
    else if (cc.sent_acceptable === false) sent = [h('span', { class: 'mono', text: cc.sent }), ' ', badge('bad', 'Not among the CAs the partner accepts')];
    else sent = [h('span', { class: 'mono', text: cc.sent })];
    if ((cc.candidates || []).length > 1) sent.push(h('p', { class: 'small', text: `Candidates, in order of preference: ${cc.candidates.join(', ')}. The partner's CA names pick one at each connection.` }));
    if (cc.presented) sent.push(h('p', { class: 'small', 'data-presented': cc.presented, text: `Presented in the handshake: ${cc.presented}.` }));
    row('Certificate sent', ...sent);
    row('Outcome', r.outcome.accepted ? badge(r.ok ? 'ok' : 'warn', 'Answered') : badge('bad', 'Failed'), h('span', { text: ` — ${r.outcome.message}` }));
    const problems = r.problems.map((p) => h('li', { 'data-code': p.code },
      h('p', { class: 'probe-problem', text: p.message }),
      h('p', { class: 'alert-hint' }, h('strong', null, 'What to do: '), p.hint, p.action ? ' ' : null, actionLink(p.action))));
    return h('div', { class: `notice probe-report ${works ? 'ok' : 'bad'}`, id: 'probe-report', role: 'status', 'aria-live': 'polite', 'data-ok': String(works) },
      h('p', { class: 'notice-title' }, h('span', { class: 'icon', 'aria-hidden': 'true' }),
        works ? `Test connection to ${what}: the path works end to end` : `Test connection to ${what}: the partner path does not work`),
      h('dl', { class: 'probe-facts' }, ...rows),
      problems.length ? h('div', null, h('h3', { text: r.problems.length === 1 ? 'Problem' : 'Problems' }), h('ul', { class: 'probe-problems' }, ...problems)) : null);
  }

  /** A "Test connection" button that probes `body` and shows the report in `slot`. */
  function probeButton(what, body, slot, alert) {
    return button('Test connection', async (e) => {
      await busy(e.target, 'Testing…', alert, async () => {
        const report = await api.post('/probe', body);
        fill(slot, probeReportView(report, what));
        slot.hidden = false;
        slot.scrollIntoView({ block: 'nearest' });
      });
    }, 'btn small', { 'aria-label': `Test connection to ${what}` });
  }

  // ---------------------------------------------------------------- bindings and services

  function certOptions(select, names, specials) {
    fill(select, 
      ...specials.map(([value, label]) => h('option', { value, text: label })),
      names.length ? h('optgroup', { label: 'Certificates' }, names.map((n) => h('option', { value: n, text: n }))) : null);
  }

  /** A binding's certificates: one link each, in order of preference, or "no certificate". */
  function certList(b) {
    const names = b.certificates || (b.certificate ? [b.certificate] : []);
    if (!names.length) return h('span', { class: 'muted', text: 'no certificate' });
    if (names.length === 1) return certLink(names[0]);
    return h('ol', { class: 'candidates', title: 'In order of preference: the partner\'s CA names pick one at each connection' }, names.map((n) => h('li', null, certLink(n))));
  }

  /** What a service sends: its own binding when it has one (certificate, trust, SNI). */
  function serviceProbe(s) {
    const body = { target: s.url };
    if (s.binding) {
      if ((s.binding.certificates || []).length) body.cert = s.binding.certificates.join(',');
      body.trust = s.binding.trust;
      if (s.binding.sni) body.sni = s.binding.sni;
    }
    return body;
  }

  async function bindingsPage(view) {
    document.title = 'Bindings and services · certgate';
    const [bindings, services, certs, anchors] = await Promise.all([api.get('/bindings'), api.get('/services'), api.get('/certificates'), api.get('/trust-anchors')]);
    const certNames = certs.map((c) => c.name).sort();
    const anchorNames = anchors.map((a) => a.name).sort();
    const listAlert = alertBox();
    const op = can('operator');

    // --- binding form
    let bindingForm = null;
    let editBinding = () => {};
    if (op) {
      const alert = alertBox();
      const dest = h('input', { type: 'text', name: 'destination', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'api.partner.example' });
      const cert = h('select', { name: 'certificate' });
      certOptions(cert, certNames, [['', '— choose a certificate —'], ['__none__', 'Send no certificate']]);
      const also = h('input', { type: 'text', name: 'also', autocomplete: 'off', spellcheck: 'false', placeholder: 'optional, e.g. billing-2027', list: 'binding-cert-names' });
      const alsoNames = h('datalist', { id: 'binding-cert-names' }, certNames.map((n) => h('option', { value: n })));
      const trust = trustPicker(anchorNames);
      const sni = h('input', { type: 'text', name: 'sni', autocomplete: 'off', spellcheck: 'false', placeholder: 'optional' });
      const pins = h('textarea', { name: 'pins', rows: '2', spellcheck: 'false', placeholder: 'sha256/BASE64 (one per line, optional)', class: 'mono' });
      const reneg = h('input', { type: 'checkbox', name: 'allow_renegotiation', id: uid('reneg') });
      const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Save binding');
      const formTitle = h('h3', { text: 'Add a binding' });
      bindingForm = h('form', { class: 'form', novalidate: true, id: 'binding-form', 'aria-label': 'Add or change a binding' },
        formTitle,
        h('div', { class: 'row2' },
          field('Partner host', dest, 'host, host:port, *.domain or a URL (reduced to its host)'),
          field('Client certificate', cert, 'what certgate presents when an app calls this host')),
        field('Other candidates', also, 'more certificates, comma-separated, in order of preference: at each connection certgate presents the first one that chains to a CA the partner names (e.g. during a move to a new CA)'),
        alsoNames,
        trust.el,
        h('details', { class: 'more' }, h('summary', { text: 'Advanced: SNI and public-key pins' }),
          h('div', { class: 'row2' },
            field('SNI host name', sni, 'only when the partner expects another name than the host'),
            field('Pins', pins, "accept only these partner public keys (openssl … | base64)")),
          h('div', { class: 'field check' },
            h('label', { for: reneg.id }, reneg, ' Allow renegotiation (the partner asks for the certificate after the request)'),
            h('p', { class: 'help', text: 'For IIS or SAP partners that ask for the client certificate per path: certgate then uses OpenSSL for this host, allows one TLS 1.2 renegotiation per connection and TLS 1.3 post-handshake authentication, and speaks HTTP/1.1.' }))),
        alert.el,
        h('div', { class: 'form-actions' }, submit, button('Clear', () => editBinding(null), 'btn quiet')));
      editBinding = (b) => {
        alert.clear();
        dest.value = b ? b.destination : '';
        // Changing a binding keeps its host; another host is a new binding (Clear first).
        dest.readOnly = !!b;
        cert.value = b ? (b.certificate === null ? '__none__' : b.certificate) : '';
        also.value = b ? (b.certificates || []).slice(1).join(', ') : '';
        trust.set(b ? b.trust : 'public');
        sni.value = b && b.sni ? b.sni : '';
        pins.value = b ? (b.pins || []).join('\n') : '';
        reneg.checked = !!(b && b.allow_renegotiation);
        formTitle.textContent = b ? `Change the binding of ${b.destination}` : 'Add a binding';
        if (b) {
          bindingForm.scrollIntoView({ block: 'start' });
          cert.focus();
        }
      };
      bindingForm.addEventListener('submit', async (e) => {
        e.preventDefault();
        const d = dest.value.trim();
        if (!d) {
          alert.message('Name the partner host', 'e.g. api.partner.example');
          return dest.focus();
        }
        if (!cert.value) {
          alert.message('Choose a certificate', 'or "Send no certificate" for a partner that needs none');
          return cert.focus();
        }
        const t = trust.value();
        if (!t) return alert.message('Pick at least one trust anchor', 'or choose Public CAs');
        const others = also.value.split(/[\s,]+/).filter(Boolean);
        if (others.length && cert.value === '__none__') {
          alert.message('"Send no certificate" has no other candidates', 'choose a certificate first, or clear Other candidates');
          return also.focus();
        }
        const body = { trust: t, pins: pins.value.split(/\s+/).filter(Boolean) };
        if (others.length) body.certificates = [cert.value, ...others];
        else body.certificate = cert.value === '__none__' ? null : cert.value;
        if (sni.value.trim()) body.sni = sni.value.trim();
        if (reneg.checked) body.allow_renegotiation = true;
        await busy(submit, 'Saving…', alert, async () => {
          const v = await api.put(`/bindings/${enc(d)}`, body);
          const lines = [];
          if (v.reduced_from) lines.push(`The URL ${v.reduced_from} was reduced to ${v.destination}.`);
          lines.push('The gateway picks the change up within a second.');
          state.flash = { kind: 'ok', title: `${v.replaced ? 'Changed' : 'Added'} binding ${v.destination} → ${(v.certificates || []).join(', ') || 'no certificate'}`, lines };
          render();
        });
      });
    }

    // The report of the last Test connection, shown above the tables.
    const probeSlot = h('div', { class: 'probe-slot', hidden: true });
    // service:NAME bindings are shown with their service below.
    const bindingRows = bindings.filter((b) => !b.destination.startsWith('service:')).map((b) => {
      const actions = op ? h('td', { class: 'row-actions' },
        button('Edit', () => editBinding(b), 'btn small', { 'aria-label': `Change the binding of ${b.destination}` }),
        b.destination.startsWith('*.') ? null : probeButton(b.destination, { target: b.destination }, probeSlot, listAlert),
        button('Remove…', async (e) => {
          const ok = await confirmDialog({ title: `Remove the binding of ${b.destination}?`, body: ['Calls to this host then go out without a client certificate (or are refused, if certgate refuses unbound hosts).'], confirm: 'Remove binding', danger: true });
          if (!ok) return;
          await busy(e.target, 'Removing…', listAlert, async () => {
            await api.del(`/bindings/${enc(b.destination)}`);
            state.flash = { kind: 'ok', title: `Removed the binding of ${b.destination}` };
            render();
          });
        }, 'btn small danger', { 'aria-label': `Remove the binding of ${b.destination}` })) : null;
      return h('tr', { 'data-destination': b.destination, class: b.unavailable ? 'sev-bad' : null },
        h('th', { scope: 'row', class: 'mono' }, b.destination,
          b.unavailable ? h('p', { class: 'small route-unavailable' }, badge('bad', 'Unavailable'), ' ', h('span', { text: `Requests get route-unavailable: ${b.unavailable}` })) : null),
        h('td', null, certList(b)),
        h('td', { text: trustText(b.trust) }),
        h('td', { class: b.sni ? 'mono' : null, text: b.sni || '—' }),
        h('td', { title: (b.pins || []).join('\n') || null, text: (b.pins || []).length ? plural(b.pins.length, 'pin') : '—' }),
        h('td', { title: b.allow_renegotiation ? 'OpenSSL engine: one renegotiation per connection, TLS 1.3 post-handshake authentication, HTTP/1.1' : null, text: b.allow_renegotiation ? 'renegotiation allowed' : '—' }),
        actions);
    });
    const bHeaders = ['Partner host', 'Certificate', 'Partner trust', 'SNI', 'Pins', 'Renegotiation'];
    if (op) bHeaders.push(h('th', { scope: 'col' }, h('span', { class: 'sr-only', text: 'Actions' })));

    // --- services
    let serviceForm = null;
    let editService = () => {};
    if (op) {
      const alert = alertBox();
      const name = h('input', { type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'Billing.InvoiceService' });
      const url = h('input', { type: 'url', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'https://api.partner.example/soap/invoice' });
      const cert = h('select', { name: 'certificate' });
      certOptions(cert, certNames, [['__host__', "Use the binding of the URL's host"], ['__none__', 'Send no certificate']]);
      const also = h('input', { type: 'text', name: 'also', autocomplete: 'off', spellcheck: 'false', placeholder: 'optional, e.g. billing-2027', list: 'service-cert-names' });
      const alsoNames = h('datalist', { id: 'service-cert-names' }, certNames.map((n) => h('option', { value: n })));
      const reneg = h('input', { type: 'checkbox', name: 'allow_renegotiation', id: uid('svc-reneg') });
      const trust = trustPicker(anchorNames);
      const sync = () => {
        const own = cert.value !== '__host__' && cert.value !== '__none__';
        trust.setDisabled(cert.value === '__host__');
        also.disabled = !own;
        reneg.disabled = !own;
      };
      cert.addEventListener('change', sync);
      sync();
      const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Save service');
      const formTitle = h('h3', { text: 'Add a named service' });
      serviceForm = h('form', { class: 'form', novalidate: true, id: 'service-form', 'aria-label': 'Add or change a named service' },
        formTitle,
        h('div', { class: 'row2' },
          field('Service name', name, `letters, digits, '.', '_' or '-'; apps call http://${proxyAddress()}/svc/NAME/…`),
          field('Partner URL', url, 'https:// base URL; the app adds the rest of the path')),
        field('Client certificate', cert),
        field('Other candidates', also, 'more certificates, comma-separated, in order of preference (the partner\'s CA names pick one)'),
        alsoNames,
        trust.el,
        h('div', { class: 'field check' },
          h('label', { for: reneg.id }, reneg, ' Allow renegotiation (the partner asks for the certificate after the request)'),
          h('p', { class: 'help', text: 'For IIS or SAP partners that ask for the client certificate per path: certgate then uses OpenSSL for this service and speaks HTTP/1.1.' })),
        alert.el,
        h('div', { class: 'form-actions' }, submit, button('Clear', () => editService(null), 'btn quiet')));
      editService = (s) => {
        alert.clear();
        name.value = s ? s.name : '';
        name.readOnly = !!s;
        url.value = s ? s.url : '';
        cert.value = s && s.binding ? (s.binding.certificate === null ? '__none__' : s.binding.certificate) : '__host__';
        also.value = s && s.binding ? (s.binding.certificates || []).slice(1).join(', ') : '';
        reneg.checked = !!(s && s.binding && s.binding.allow_renegotiation);
        trust.set(s && s.binding ? s.binding.trust : 'public');
        sync();
        formTitle.textContent = s ? `Change service ${s.name}` : 'Add a named service';
        if (s) {
          serviceForm.scrollIntoView({ block: 'start' });
          url.focus();
        }
      };
      serviceForm.addEventListener('submit', async (e) => {
        e.preventDefault();
        if (!name.value.trim()) return alert.message('Name the service', 'e.g. Billing.InvoiceService');
        if (!url.value.trim()) return alert.message('Give the partner URL', 'e.g. https://api.partner.example/soap/invoice');
        const body = { url: url.value.trim() };
        if (cert.value !== '__host__') {
          const others = cert.value === '__none__' ? [] : also.value.split(/[\s,]+/).filter(Boolean);
          if (others.length) body.certificates = [cert.value, ...others];
          else body.certificate = cert.value === '__none__' ? null : cert.value;
          if (reneg.checked && cert.value !== '__none__') body.allow_renegotiation = true;
          const t = trust.value();
          if (!t) return alert.message('Pick at least one trust anchor', 'or choose Public CAs');
          body.trust = t;
        }
        await busy(submit, 'Saving…', alert, async () => {
          const v = await api.put(`/services/${enc(name.value.trim())}`, body);
          state.flash = { kind: 'ok', title: `${v.replaced ? 'Changed' : 'Added'} service ${v.name} → ${v.url}`, lines: [`Applications call http://${proxyAddress()}/svc/${v.name}/…`] };
          render();
        });
      });
    }
    const serviceRows = services.map((s) => h('tr', { 'data-service': s.name },
      h('th', { scope: 'row', text: s.name }),
      h('td', { class: 'mono break', text: s.url }),
      h('td', null, s.binding ? certList(s.binding) : h('span', { class: 'muted', text: "the host's binding" })),
      h('td', { text: s.binding ? trustText(s.binding.trust) + (s.binding.allow_renegotiation ? '; renegotiation allowed' : '') : '—' }),
      h('td', { class: 'mono small', text: `/svc/${s.name}/` }),
      op ? h('td', { class: 'row-actions' },
        button('Edit', () => editService(s), 'btn small', { 'aria-label': `Change service ${s.name}` }),
        probeButton(`service ${s.name}`, serviceProbe(s), probeSlot, listAlert),
        button('Remove…', async (e) => {
          const ok = await confirmDialog({ title: `Remove service ${s.name}?`, body: [`Apps calling /svc/${s.name}/ then get an error.`], confirm: 'Remove service', danger: true });
          if (!ok) return;
          await busy(e.target, 'Removing…', listAlert, async () => {
            await api.del(`/services/${enc(s.name)}`);
            state.flash = { kind: 'ok', title: `Removed service ${s.name}` };
            render();
          });
        }, 'btn small danger', { 'aria-label': `Remove service ${s.name}` })) : null));
    const sHeaders = ['Service', 'Partner URL', 'Certificate', 'Partner trust', 'Apps call'];
    if (op) sHeaders.push(h('th', { scope: 'col' }, h('span', { class: 'sr-only', text: 'Actions' })));

    fill(view, 
      pageHeader('Bindings and services', 'Which client certificate certgate presents when an application calls a partner — by host, or by a named service for SOAP clients.'),
      flashPanel(),
      listAlert.el,
      probeSlot,
      section('Bindings',
        h('p', { class: 'help' }, `Applications send plain HTTP to certgate (HTTP_PROXY=http://${proxyAddress()}); certgate calls the partner over HTTPS with the bound certificate.`),
        h('div', { class: 'flush-table' }, table('Bindings', bHeaders, bindingRows.length ? bindingRows : [emptyRow(bHeaders.length, 'No bindings yet.')])),
        bindingForm || roleNote('operator', 'Changing bindings')),
      section('Named services',
        h('p', { class: 'help', text: 'A service name gives SOAP and REST clients a fixed endpoint on certgate that forwards to the partner URL.' }),
        h('div', { class: 'flush-table' }, table('Named services', sHeaders, serviceRows.length ? serviceRows : [emptyRow(sHeaders.length, 'No named services yet.')])),
        serviceForm || roleNote('operator', 'Changing services')));
  }

  // ---------------------------------------------------------------- apps and grants

  async function appsPage(view) {
    document.title = 'Apps · certgate';
    const [apps, certs] = await Promise.all([api.get('/apps'), api.get('/certificates')]);
    const certNames = certs.map((c) => c.name).sort();
    const listAlert = alertBox();
    const op = can('operator');
    // Shown until hidden or until the user leaves the page (never fetched again).
    const created = state.createdApp;

    const rows = apps.map((a) => {
      const grants = h('ul', { class: 'chips' }, a.grants.length ? a.grants.map((g) => h('li', { class: 'chip' }, certLink(g),
        op ? button('×', async (e) => {
          await busy(e.target, '…', listAlert, async () => {
            await api.del(`/apps/${enc(a.name)}/grants/${enc(g)}`);
            state.flash = { kind: 'ok', title: `App ${a.name} may no longer present ${g}` };
            render();
          });
        }, 'chip-x', { 'aria-label': `Revoke ${g} from ${a.name}`, title: `Revoke ${g}` }) : null)) : h('li', { class: 'muted', text: 'no certificates' }));
      let grantCell = null;
      if (op) {
        const left = certNames.filter((n) => !a.grants.includes(n));
        const sel = h('select', { 'aria-label': `Certificate to grant to ${a.name}` }, h('option', { value: '', text: left.length ? 'Grant a certificate…' : 'all granted' }), left.map((n) => h('option', { value: n, text: n })));
        const go = button('Grant', async () => {
          if (!sel.value) return sel.focus();
          await busy(go, 'Granting…', listAlert, async () => {
            await api.put(`/apps/${enc(a.name)}/grants/${enc(sel.value)}`);
            state.flash = { kind: 'ok', title: `App ${a.name} may now present ${sel.value}` };
            render();
          });
        }, 'btn small', { disabled: !left.length });
        grantCell = h('td', { class: 'grant-cell' }, h('div', { class: 'inline' }, sel, go));
      }
      const remove = op ? button('Remove…', async (e) => {
        const ok = await confirmDialog({ title: `Remove app ${a.name}?`, body: ['Its proxy credential stops working at once, and its grants are removed.'], confirm: 'Remove app', danger: true });
        if (!ok) return;
        await busy(e.target, 'Removing…', listAlert, async () => {
          await api.del(`/apps/${enc(a.name)}`);
          state.flash = { kind: 'ok', title: `Removed app ${a.name}` };
          render();
        });
      }, 'btn small danger', { 'aria-label': `Remove app ${a.name}` }) : null;
      return h('tr', { 'data-app': a.name },
        h('th', { scope: 'row', text: a.name }),
        h('td', null, grants),
        grantCell,
        h('td', { class: 'nowrap', text: fmtDate(a.created_at) }),
        op ? h('td', { class: 'row-actions' }, remove) : null);
    });
    const headers = ['App', 'May present'];
    if (op) headers.push('Grant');
    headers.push('Added');
    if (op) headers.push(h('th', { scope: 'col' }, h('span', { class: 'sr-only', text: 'Actions' })));

    let addForm = null;
    if (op) {
      const alert = alertBox();
      const name = h('input', { type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'invoicing-app' });
      const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Add app');
      addForm = h('form', { class: 'form inline-form', novalidate: true, 'aria-label': 'Add an app' },
        field('App name', name, "letters, digits, '.', '_' or '-'; it becomes the proxy user name"),
        h('div', { class: 'form-actions' }, submit), alert.el);
      addForm.addEventListener('submit', async (e) => {
        e.preventDefault();
        if (!name.value.trim()) return alert.message('Name the app', 'e.g. invoicing-app');
        await busy(submit, 'Adding…', alert, async () => {
          state.createdApp = await api.post('/apps', { name: name.value.trim() });
          render();
        });
      });
    }
    let secret = null;
    if (created) {
      const proxy = `http://${created.name}:${created.credential}@${proxyAddress()}`;
      secret = secretPanel(() => { state.createdApp = null; }, `App '${created.name}' added — copy its credential now`, [
        'This is the only time the credential is shown; certgate stores only a hash of it.',
        `Configure the app to use certgate as its HTTP proxy with this user and credential (certgate's proxy listens on ${proxyAddress()}), then grant it the certificates it may present.`,
      ], [
        { label: 'Credential', value: created.credential },
        { label: 'HTTP_PROXY', value: proxy },
      ]);
    }
    fill(view, 
      pageHeader('Apps and grants', 'The applications that call partners through certgate, and which certificates each may present.'),
      flashPanel(),
      secret,
      h('div', { class: 'notice info' },
        h('p', { text: 'With no apps, any caller on this machine may use every binding. Once at least one app exists, every caller of the proxy must authenticate with an app credential (Proxy-Authorization) and may present only the certificates granted to it.' }),
        h('p', null, 'An app with several grants picks one per request with the header ', h('code', { text: 'Certgate-Certificate: NAME' }), '.')),
      listAlert.el,
      h('div', { class: 'panel flush' }, table('Apps', headers, rows.length ? rows : [emptyRow(headers.length, 'No apps: any caller of the proxy may use every binding.')])),
      addForm ? section('Add an app', addForm) : roleNote('operator', 'Managing apps'));
    if (secret) secret.focus();
  }

  // ---------------------------------------------------------------- tokens

  async function tokensPage(view) {
    document.title = 'Tokens · certgate';
    if (!can('admin')) {
      fill(view, pageHeader('Tokens'), roleNote('admin', 'Managing tokens'));
      return;
    }
    const tokens = await api.get('/tokens');
    const listAlert = alertBox();
    const created = state.createdToken;
    const rows = tokens.map((t) => {
      const self = t.name === state.session.name;
      return h('tr', null,
        h('th', { scope: 'row' }, t.name, self ? h('span', { class: 'muted', text: ' (you)' }) : null),
        h('td', null, h('span', { class: `role-tag ${t.role}`, text: t.role })),
        h('td', { class: 'nowrap', text: fmtDate(t.created_at) }),
        h('td', { class: 'row-actions' }, button('Revoke…', async (e) => {
          const ok = await confirmDialog({ title: `Revoke token ${t.name}?`, body: [self ? 'This is the token you signed in with: you will be signed out.' : 'Scripts and people using it lose access at once; their console sessions end.'], confirm: 'Revoke token', danger: true });
          if (!ok) return;
          await busy(e.target, 'Revoking…', listAlert, async () => {
            await api.del(`/tokens/${enc(t.name)}`);
            if (self) return signedOut('Your token was revoked.');
            state.flash = { kind: 'ok', title: `Revoked token ${t.name}` };
            render();
          });
        }, 'btn small danger', { 'aria-label': `Revoke token ${t.name}` })));
    });
    const alert = alertBox();
    const name = h('input', { type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'jane' });
    const role = h('select', null,
      h('option', { value: 'viewer', text: 'viewer — reads everything' }),
      h('option', { value: 'operator', text: 'operator — also bindings, services, apps' }),
      h('option', { value: 'admin', text: 'admin — also certificates, anchors, tokens' }));
    const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Create token');
    const form = h('form', { class: 'form', novalidate: true, 'aria-label': 'Create a token' },
      h('div', { class: 'row2' }, field('Name', name, 'who or what uses it; the audit log shows this name'), field('Role', role)),
      alert.el, h('div', { class: 'form-actions' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!name.value.trim()) return alert.message('Name the token', 'e.g. the person or script that will use it');
      await busy(submit, 'Creating…', alert, async () => {
        state.createdToken = await api.post('/tokens', { name: name.value.trim(), role: role.value });
        render();
      });
    });
    const secret = created ? secretPanel(() => { state.createdToken = null; }, `Token '${created.name}' (${created.role}) created — copy it now`, [
      'This is the only time the token is shown; certgate stores only a hash of it. Use it to sign in here, or as Authorization: Bearer TOKEN on the API.',
    ], [{ label: 'Token', value: created.token }]) : null;
    fill(view, 
      pageHeader('Tokens', 'Who may use this console and the admin API, and with which role.'),
      flashPanel(),
      secret,
      listAlert.el,
      h('div', { class: 'panel flush' }, table('Tokens', ['Name', 'Role', 'Created', h('th', { scope: 'col' }, h('span', { class: 'sr-only', text: 'Actions' }))], rows.length ? rows : [emptyRow(4, 'No tokens.')])),
      section('Create a token', form));
    if (secret) secret.focus();
  }

  // ---------------------------------------------------------------- audit

  const ACTIONS = {
    'cert.import': 'Imported certificate',
    'cert.rotate': 'Rotated certificate',
    'cert.remove': 'Removed certificate',
    'trust.add': 'Added trust anchor',
    'trust.remove': 'Removed trust anchor',
    bind: 'Bound',
    unbind: 'Unbound',
    'service.add': 'Set service',
    'service.remove': 'Removed service',
    'app.add': 'Added app',
    'app.remove': 'Removed app',
    'app.grant': 'Granted',
    'app.revoke': 'Revoked grant',
    'token.create': 'Created token',
    'token.revoke': 'Revoked token',
  };

  /** `api:NAME` (a token, via the API or console) or `cli:USER` (the command line). */
  function actorView(actor) {
    const m = /^(api|cli):(.*)$/.exec(String(actor));
    if (!m) return h('span', { class: 'actor-name', text: actor });
    return [h('span', { class: 'actor-name', text: m[2] }), h('span', { class: 'actor-via muted small', text: m[1] === 'api' ? 'token, console or API' : 'command line' })];
  }

  async function auditPage(view, query) {
    document.title = 'Audit log · certgate';
    const limit = Number(query.get('limit')) || 100;
    const entries = await api.get(`/audit?limit=${limit}`);
    entries.sort((a, b) => b.seq - a.seq);
    const filter = h('input', { type: 'search', class: 'search', placeholder: 'Filter by actor, action, target or detail', 'aria-label': 'Filter the audit log' });
    const limitSel = h('select', { 'aria-label': 'How many entries' }, [50, 100, 500, 1000].map((n) => h('option', { value: String(n), text: `last ${n}`, selected: n === limit })));
    limitSel.addEventListener('change', () => {
      location.hash = `#/audit?limit=${limitSel.value}`;
    });
    const tbody = h('tbody');
    const count = h('p', { class: 'muted count-line', 'aria-live': 'polite' });
    const draw = () => {
      const q = filter.value.trim().toLowerCase();
      const shown = entries.filter((e) => !q || [e.actor, e.action, ACTIONS[e.action] || '', e.target, e.detail].some((t) => String(t).toLowerCase().includes(q)));
      fill(tbody, ...shown.map((e) => h('tr', { class: e.result === 'ok' ? null : 'sev-bad', 'data-action': e.action },
        h('td', { class: 'nowrap', text: fmtDateTime(e.at) }),
        h('td', { class: 'actor', title: e.actor }, actorView(e.actor)),
        h('td', null, h('span', { class: 'action-label', text: ACTIONS[e.action] || e.action }), h('span', { class: 'action-code mono muted small', text: e.action })),
        h('td', { class: 'mono target break', text: e.target }),
        h('td', { class: 'break', text: e.detail || '—' }),
        h('td', null, e.result === 'ok' ? badge('ok', 'ok') : badge('bad', e.result)),
        h('td', { class: 'num', text: String(e.revision) }))));
      if (!shown.length) tbody.append(emptyRow(7, entries.length ? 'No entry matches this filter.' : 'The audit log is empty.'));
      count.textContent = shown.length === entries.length ? plural(entries.length, 'entry', 'entries') : `Showing ${shown.length} of ${entries.length}`;
    };
    filter.addEventListener('input', draw);
    draw();
    fill(view, 
      pageHeader('Audit log', 'Every change, newest first: who (token or command-line user), what, and when (UTC).'),
      h('div', { class: 'panel flush' },
        h('div', { class: 'table-tools' }, filter, limitSel, count),
        h('div', { class: 'table-wrap' }, h('table', { class: 'grid audit' }, h('caption', { class: 'sr-only', text: 'Audit log, newest first' }),
          h('thead', null, h('tr', null, ['Time (UTC)', 'Actor', 'Action', 'Target', 'Detail', 'Result', 'Revision'].map((t) => h('th', { scope: 'col', text: t })))), tbody))));
  }


  // ---------------------------------------------------------------- apply (declarative file)

  const STEP_SIGNS = { create: '+', replace: '~', remove: '−', unchanged: '' };

  function planTable(plan) {
    const changed = plan.steps.filter((st) => st.action !== 'unchanged');
    const rows = changed.map((st) => h('tr', { class: `plan-${st.action}`, 'data-action': st.action },
      h('td', { class: 'nowrap' }, h('span', { class: 'plan-sign mono', 'aria-hidden': 'true', text: STEP_SIGNS[st.action] }), ' ', st.action),
      h('td', { text: st.kind }),
      h('th', { scope: 'row', class: 'mono break', text: st.name }),
      h('td', { class: 'break', text: st.detail || '—' })));
    const m = plan.summary;
    return h('div', null,
      h('p', { class: 'plan-summary', 'aria-live': 'polite', text: `Plan: ${m.create} to create, ${m.replace} to replace, ${m.remove} to remove, ${m.unchanged} unchanged${plan.prune ? ' (removing what the document does not declare)' : ''}.` }),
      h('div', { class: 'panel flush' }, table('Plan', ['Action', 'Kind', 'Object', 'Detail'], rows.length ? rows : [emptyRow(4, 'Nothing to change: the store already matches the document.')])));
  }

  async function applyPage(view) {
    document.title = 'Apply a file · certgate';
    if (!can('admin')) {
      fill(view, pageHeader('Apply a file'), roleNote('admin', 'Applying a declarative file'));
      return;
    }
    const alert = alertBox();
    const text = h('textarea', { class: 'mono apply-text', rows: '16', spellcheck: 'false', placeholder: '[[certificates]]\nname = "partner-prod"\nid = "…"\n\n[[bindings]]\ndestination = "api.partner.example"\ncertificate = "partner-prod"' });
    const file = h('input', { type: 'file', accept: '.toml,.yaml,.yml,text/plain' });
    const format = h('select', null, h('option', { value: 'toml', text: 'TOML' }), h('option', { value: 'yaml', text: 'YAML' }));
    const prune = h('input', { type: 'checkbox' });
    const planOut = h('div', { class: 'plan-out' });
    const planBtn = h('button', { type: 'submit', class: 'btn primary' }, 'Show the plan');
    let shown = null; // {document, format, prune, plan}
    const stale = () => {
      if (shown) {
        shown = null;
        fill(planOut, h('p', { class: 'muted', text: 'The document changed: show the plan again before applying.' }));
      }
    };
    text.addEventListener('input', stale);
    format.addEventListener('change', stale);
    prune.addEventListener('change', stale);
    file.addEventListener('change', async () => {
      const f = file.files[0];
      if (!f) return;
      if (f.size > 1024 * 1024) return alert.message('The file is too large', 'an apply file sent to the console is at most 1 MiB');
      text.value = await f.text();
      format.value = /\.ya?ml$/i.test(f.name) ? 'yaml' : 'toml';
      stale();
    });
    const body = (dryRun) => ({ document: text.value, format: format.value, dry_run: dryRun, prune: prune.checked });
    const form = h('form', { class: 'form', novalidate: true, 'aria-label': 'Plan an apply file' },
      field('Document', text, 'Paste the apply file, or choose it below. Certificates are declared by id (upload them first); trust anchors with their PEM text.'),
      h('div', { class: 'row2' }, field('Or upload a file', file), field('Format', format)),
      h('div', { class: 'field check' }, h('label', null, prune, ' Also remove what the document does not declare (prune)')),
      alert.el, h('div', { class: 'form-actions' }, planBtn));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!text.value.trim()) return alert.message('The document is empty', 'paste an apply file or choose one');
      await busy(planBtn, 'Planning…', alert, async () => {
        const req = body(true);
        const plan = await api.post('/apply', req);
        shown = { req, plan };
        const changes = plan.summary.create + plan.summary.replace + plan.summary.remove;
        const applyBtn = changes ? button('Apply this plan…', async (ev) => {
          if (!shown || shown.plan !== plan) return;
          const ok = await confirmDialog({
            title: `Apply ${plural(changes, 'change')}?`,
            body: ['All of it is written in one transaction, or nothing is.', plan.summary.remove ? `${plural(plan.summary.remove, 'object')} will be removed.` : null].filter(Boolean),
            confirm: 'Apply', danger: plan.summary.remove > 0,
          });
          if (!ok) return;
          await busy(ev.target, 'Applying…', alert, async () => {
            const done = await api.post('/apply', Object.assign({}, shown.req, { dry_run: false }));
            const lines = [`Store revision ${done.revision} → ${done.revision_after} (apply id ${done.apply_id}).`];
            fill(planOut, h('div', { class: 'notice ok', role: 'status' }, h('p', { class: 'notice-title', text: `Applied ${plural(changes, 'change')}` }), lines.map((l) => h('p', { text: l }))),
              (done.credentials || []).length ? secretPanel(() => {}, 'New app credentials — copy them now', ['This is the only time they are shown; certgate stores only a hash.'], done.credentials.map((c) => ({ label: c.name, value: c.credential }))) : null,
              planTable(done));
            shown = null;
          });
        }, 'btn primary apply-confirm') : null;
        fill(planOut, planTable(plan), applyBtn ? h('div', { class: 'form-actions' }, applyBtn) : null);
      });
    });
    fill(view,
      pageHeader('Apply a file', 'Make the store match a declarative file: see the plan first, then apply it in one transaction.'),
      section('Document', form),
      planOut);
  }

  // ---------------------------------------------------------------- expiry and renewal

  const KIND_TEXT = { certificate: 'Client certificate', 'trust-anchor': 'Trust anchor', 'partner-certificate': 'Partner certificate' };

  function itemLink(i) {
    if (i.kind === 'certificate') return certLink(i.name);
    if (i.kind === 'trust-anchor') return h('a', { href: '#/trust', text: i.name });
    return h('span', { class: 'mono', text: i.name });
  }

  /** What expires within a window: certificates, anchors and the partners' certificates the
   *  gateway met, soonest first, grouped by month as a timeline, with owner and what to do. */
  async function expiryPage(view, query) {
    document.title = 'Expiry · certgate';
    const choices = [7, 30, 90, 365];
    const within = choices.includes(Number(query.get('within'))) ? Number(query.get('within')) : 30;
    const report = await api.get(`/expiry?within=${within}d`);
    const items = report.items || [];
    const picker = h('div', { class: 'filters', role: 'group', 'aria-label': 'Window' },
      choices.map((d) => h('a', { href: `#/expiry?within=${d}`, class: ['chip', d === within ? 'on' : null], 'aria-current': d === within ? 'true' : null, text: `${d} days` })));
    const months = new Map();
    for (const i of items) {
      const key = i.days_left < 0 ? 'Expired' : String(i.not_after).slice(0, 7);
      if (!months.has(key)) months.set(key, []);
      months.get(key).push(i);
    }
    const loud = items.filter((i) => i.loud);
    const timeline = [...months.entries()].map(([month, list]) => h('section', { class: 'panel timeline-month', 'aria-label': month },
      h('h2', { text: month === 'Expired' ? 'Already expired' : month }),
      h('ol', { class: 'timeline' }, list.map((i) => h('li', { class: ['expiry-item', i.status, i.loud ? 'loud' : null], 'data-kind': i.kind, 'data-name': i.name },
        h('div', { class: 'expiry-when' },
          badge(i.status === 'warning' ? 'warn' : 'bad', i.days_left < 0 ? 'Expired' : i.days_left === 0 ? 'Today' : `${plural(i.days_left, 'day')}`),
          h('span', { class: 'muted small', text: fmtDate(i.not_after) })),
        h('div', { class: 'expiry-what' },
          h('p', null, h('strong', { text: `${KIND_TEXT[i.kind] || i.kind}: ` }), itemLink(i), i.loud ? [' ', h('span', { class: 'loud-tag', text: 'Act before the partner renews' })] : null),
          h('p', { class: 'small', title: i.subject, text: `${cnOf(i.subject)} — issued by ${cnOf(i.issuer)}` }),
          i.kind === 'partner-certificate' ? h('p', { class: 'small muted', text: 'Partner certificates have no owner in certgate: their alerts go to the default contact.' }) : h('p', { class: 'small' }, h('strong', null, 'Owner: '), i.owner || 'none', i.contact ? ` (${i.contact})` : '', !i.owner && !i.contact && i.kind !== 'partner-certificate' ? h('span', { class: 'muted', text: ' — set one so that alerts reach someone' }) : null),
          h('p', { class: 'small action' }, h('strong', null, 'What to do: '), i.action),
          i.kind === 'certificate' && can('admin') ? h('p', { class: 'small' }, h('a', { href: `#/renewal?name=${enc(i.name)}`, text: `Renew ${i.name} inside certgate` })) : null))))));
    fill(view,
      pageHeader('Expiry', `What expires within ${within} days (as of ${fmtDateTime(report.now)}), soonest first.`,
        can('admin') ? h('a', { class: 'btn', href: '#/renewal', text: 'Renewal requests' }) : null),
      picker,
      loud.length ? h('div', { class: 'notice bad', role: 'status' }, h('p', { class: 'notice-title', text: `${plural(loud.length, 'partner')} trusted by a pin or a self-signed certificate` }),
        h('p', { text: 'When these partners renew their certificate, calls fail until you replace the pin or add the new certificate as a trust anchor. Ask the partner for it now.' })) : null,
      items.length ? timeline : h('div', { class: 'panel' }, h('p', { class: 'empty-note', text: `Nothing expires within ${within} days.` })));
  }

  /** Renewal without the key leaving certgate: start a request (the key is made and sealed
   *  inside), download its CSR, upload the issued certificate; pending requests with their age. */
  async function renewalPage(view, query) {
    document.title = 'Renewal · certgate';
    const pending = await api.get('/requests');
    const ageText = (s) => (s < 3600 ? plural(Math.max(1, Math.round(s / 60)), 'minute') : s < 172800 ? plural(Math.round(s / 3600), 'hour') : plural(Math.round(s / 86400), 'day'));
    const listAlert = alertBox();
    const rows = pending.map((r) => {
      const file = h('input', { type: 'file', accept: '.pem,.crt,.cer,.der,.p7b,.p7c', 'aria-label': `Issued certificate for ${r.name}` });
      const complete = h('button', { type: 'button', class: 'btn small primary' }, 'Complete');
      complete.addEventListener('click', async () => {
        if (!file.files.length) return listAlert.message('Choose the issued certificate', 'PEM, DER or .p7b, as the CA returned it');
        await busy(complete, 'Completing…', listAlert, async () => {
          const content = await readFileBase64(file.files[0]);
          const v = await api.post(`/certificates/${enc(r.name)}/complete`, { content });
          state.flash = { kind: 'ok', title: `'${v.name}' now presents the new certificate`, lines: [`Expires ${fmtDate(v.not_after)}. Bindings and grants stay; requests in flight finish on the old one.`] };
          location.hash = `#/certificates/${enc(v.name)}`;
        });
      });
      return h('tr', { 'data-name': r.name },
        h('th', { scope: 'row' }, r.renewal ? certLink(r.name) : r.name),
        h('td', { title: r.subject, text: cnOf(r.subject) }),
        h('td', { text: r.key_type }),
        h('td', { class: 'nowrap', title: fmtDateTime(r.created_at), text: ageText(r.age_seconds) }),
        h('td', { title: r.renewal ? 'The current certificate serves until the request is completed' : 'No certificate under this name yet', text: r.renewal ? 'Renewal' : 'New' }),
        h('td', null, h('a', { class: 'btn small', href: `/api/v1/certificates/${enc(r.name)}/request`, download: `${r.name}.csr`, text: 'Download CSR' })),
        can('admin') ? h('td', null, h('div', { class: 'upload-cell' }, file, complete)) : null);
    });
    const headers = ['Name', 'Subject', 'Key', 'Age', 'Kind', 'CSR'];
    if (can('admin')) headers.push('Issued certificate');

    let startForm = null;
    if (can('admin')) {
      const alert = alertBox();
      const preset = query.get('name') || '';
      const name = h('input', { type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', value: preset, placeholder: 'billing-client' });
      const subject = h('input', { type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'CN=billing,O=Example' });
      const dns = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'billing.example.com' });
      const key = h('select', null, ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'].map((k) => h('option', { value: k, text: k })));
      const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Make key and CSR');
      const out = h('div', { class: 'csr-out' });
      if (preset) {
        try {
          const c = await api.get(`/certificates/${enc(preset)}`);
          subject.value = c.subject || '';
        } catch (_) { /* a new name */ }
      }
      startForm = h('form', { class: 'form', novalidate: true, 'aria-label': 'Start a certificate request' },
        h('div', { class: 'row2' }, field('Name', name, 'An existing certificate\'s name renews it: it keeps serving until the request is completed.'), field('Key type', key)),
        field('Subject', subject, 'The distinguished name the CA should issue, e.g. CN=billing,O=Example.'),
        field('DNS names (optional)', dns, 'Comma-separated; most client certificates need none.'),
        alert.el, h('div', { class: 'form-actions' }, submit), out);
      startForm.addEventListener('submit', async (e) => {
        e.preventDefault();
        if (!name.value.trim()) return alert.message('Give the certificate a name', 'e.g. billing-client');
        if (!subject.value.trim()) return alert.message('Give the subject', 'e.g. CN=billing,O=Example');
        await busy(submit, 'Making the key…', alert, async () => {
          const list = dns.value.split(',').map((d) => d.trim()).filter(Boolean);
          const v = await api.post(`/certificates/${enc(name.value.trim())}/request`, { subject: subject.value.trim(), dns: list, key: key.value });
          state.flash = { kind: 'ok', title: `Request for '${v.name}' started`, lines: ['The private key was made inside certgate and sealed; it never leaves it. Download the CSR below and send it to your CA or partner, then upload what they issue.'] };
          if (location.hash === '#/renewal') render();
          else location.hash = '#/renewal';
        });
      });
    }
    fill(view,
      pageHeader('Renewal', 'Request a certificate with a key made inside certgate, then complete it with what the CA issues. A renewal keeps the current certificate serving until then.',
        h('a', { class: 'btn', href: '#/expiry', text: 'Expiry' })),
      flashPanel(),
      listAlert.el,
      section('Pending requests', h('div', { class: 'panel flush' }, table('Pending requests', headers, rows.length ? rows : [emptyRow(headers.length, 'No pending requests.')]))),
      startForm ? section('Start a request', startForm) : roleNote('admin', 'Starting a request'));
  }

  // ---------------------------------------------------------------- routing

  const NAV = [
    ['#/', 'Certificates', 'viewer', /^\/(certificates\/.*)?$/],
    ['#/upload', 'Upload', 'admin', /^\/upload$/],
    ['#/trust', 'Trust anchors', 'viewer', /^\/trust$/],
    ['#/bindings', 'Bindings & services', 'viewer', /^\/bindings$/],
    ['#/apps', 'Apps', 'viewer', /^\/apps$/],
    ['#/tokens', 'Tokens', 'admin', /^\/tokens$/],
    ['#/expiry', 'Expiry', 'viewer', /^\/(expiry|renewal)$/],
    ['#/apply', 'Apply a file', 'admin', /^\/apply$/],
    ['#/audit', 'Audit log', 'viewer', /^\/audit$/],
  ];

  const ROUTES = [
    [/^\/?$/, dashboardPage],
    [/^\/certificates\/([^/]+)$/, certificatePage],
    [/^\/certificates\/([^/]+)\/rotate$/, rotatePage],
    [/^\/upload$/, uploadPage],
    [/^\/trust$/, trustPage],
    [/^\/bindings$/, bindingsPage],
    [/^\/apps$/, appsPage],
    [/^\/tokens$/, tokensPage],
    [/^\/apply$/, applyPage],
    [/^\/expiry$/, expiryPage],
    [/^\/renewal$/, renewalPage],
    [/^\/audit$/, auditPage],
  ];

  function drawChrome(path) {
    const top = document.getElementById('topbar');
    top.hidden = !state.session;
    if (!state.session) return;
    const nav = document.getElementById('nav');
    fill(nav, h('ul', null, NAV.filter(([, , role]) => can(role)).map(([href, label, , re]) =>
      h('li', null, h('a', { href, text: label, 'aria-current': re.test(path) ? 'page' : null })))));
    const s = state.session;
    fill(document.getElementById('who'), 
      h('span', { class: 'who-name', title: `Signed in with token '${s.name}'` }, h('span', { class: 'icon user', 'aria-hidden': 'true' }), s.name),
      h('span', { class: `role-tag ${s.role}`, text: s.role }),
      button('Sign out', signOut, 'btn small quiet'));
  }

  let lastPath = null;
  async function render() {
    const seq = ++state.renderSeq;
    const raw = location.hash.replace(/^#/, '') || '/';
    const [path, qs] = raw.split('?');
    const query = new URLSearchParams(qs || '');
    const view = mainEl();
    drawChrome(path);
    if (!state.session) {
      loginPage(view);
      return;
    }
    const route = ROUTES.find(([re]) => re.test(path));
    if (!route) {
      fill(view, pageHeader('Page not found'), h('p', null, 'There is no such page. ', h('a', { href: '#/', text: 'Go to the certificates' })));
      return;
    }
    const params = route[0].exec(path).slice(1).map(decodeURIComponent);
    const navigated = lastPath !== null && lastPath !== path;
    lastPath = path;
    if (navigated) {
      // Secrets shown once are dropped as soon as the user leaves their page.
      state.createdApp = null;
      state.createdToken = null;
    }
    // Render into a detached container, then swap, so a slow load never shows half a page.
    const next = h('div', { class: 'page' });
    const loading = setTimeout(() => {
      if (seq === state.renderSeq) view.setAttribute('aria-busy', 'true');
    }, 150);
    try {
      await route[1](next, ...params, query);
    } catch (e) {
      if (seq !== state.renderSeq || !state.session) return;
      const alert = alertBox();
      alert.show(e);
      fill(next, pageHeader(e.status === 404 ? 'Not found' : 'This page could not be loaded'), alert.el, h('p', null, h('a', { href: '#/', text: 'Back to the certificates' })));
    } finally {
      clearTimeout(loading);
    }
    if (seq !== state.renderSeq) return;
    view.removeAttribute('aria-busy');
    if (document.title === 'certgate console' || !/· certgate$/.test(document.title)) document.title = 'certgate';
    fill(view, ...next.childNodes);
    if (navigated) {
      const h1 = view.querySelector('h1');
      if (h1) h1.focus({ preventScroll: true });
      window.scrollTo(0, 0);
    }
  }

  async function start() {
    try {
      state.session = await request('GET', '/console/session');
    } catch (_) {
      state.session = null;
    }
    window.addEventListener('hashchange', () => {
      // A page title from the previous page must not stick.
      document.title = 'certgate';
      render();
    });
    render();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
