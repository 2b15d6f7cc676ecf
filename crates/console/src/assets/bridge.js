// The host side of @forge/bridge in signoff's console. Loaded first in the <head> of an app's
// Custom UI page, before the app's bundle, it defines window.__bridge.callBridge, which every
// @forge/bridge API calls (shared/spec/forge-node-runtime.md §5). `invoke` and `getContext`
// go to the console's server (the resolver runs in the simulator as the frame's user); the
// commands that concern the page around the frame (navigation, flags, size, "something
// changed") become messages to the console; the rest are answered here.
(function () {
  'use strict';
  var CONSOLE = '__CONSOLE_ORIGIN__';
  var match = /^\/frame\/([^/]+)\//.exec(location.pathname);
  var frame = match ? match[1] : '';

  function tell(message) {
    message.signoff = true;
    message.frame = frame;
    try {
      parent.postMessage(message, CONSOLE);
    } catch (e) {
      /* not embedded in the console */
    }
  }

  function server(cmd, payload) {
    return fetch('/frame/' + frame + '/bridge', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-signoff-console': '1' },
      body: JSON.stringify({ cmd: cmd, payload: payload === undefined ? null : payload }),
    }).then(function (r) {
      return r.json().then(function (body) {
        if (body && body.error) {
          var e = new Error(body.error.message);
          e.code = body.error.code;
          throw e;
        }
        if (!r.ok) throw new Error('the console answered ' + r.status);
        return cmd === 'invoke' ? body.result : body;
      });
    });
  }

  var listeners = {};
  function history() {
    var subscribers = [];
    var h = {
      length: 1,
      action: 'POP',
      location: { pathname: '/', search: '', hash: '', state: undefined, key: 'default' },
      push: function (path, state) { go(path, state, 'PUSH'); },
      replace: function (path, state) { go(path, state, 'REPLACE'); },
      go: function () {}, goBack: function () {}, goForward: function () {},
      block: function () { return function () {}; },
      createHref: function (l) { return typeof l === 'string' ? l : (l.pathname || '/'); },
      listen: function (fn) {
        subscribers.push(fn);
        return function () { subscribers = subscribers.filter(function (s) { return s !== fn; }); };
      },
    };
    function go(path, state, action) {
      var p = typeof path === 'string' ? { pathname: path } : path || {};
      h.location = { pathname: p.pathname || '/', search: p.search || '', hash: p.hash || '', state: state, key: String(Math.random()).slice(2, 8) };
      h.action = action;
      subscribers.forEach(function (fn) { fn(h.location, action); });
    }
    return h;
  }

  function callBridge(cmd, payload) {
    switch (cmd) {
      case 'invoke':
        if (payload && payload.invokeType) {
          return Promise.resolve({ success: false, error: 'remotes and containers are not simulated by the console' });
        }
        return server('invoke', payload).then(function (value) {
          tell({ type: 'changed' });
          return payload && payload.metadata ? { body: value } : value;
        });
      case 'getContext':
        return server('getContext');
      case 'navigate':
        tell({ type: 'navigate', location: payload });
        return Promise.resolve(true);
      case 'getUrl':
        return Promise.resolve(CONSOLE + '/#/' + encodeURIComponent(JSON.stringify(payload || {})));
      case 'reload':
        location.reload();
        return Promise.resolve(true);
      case 'createHistory':
        return Promise.resolve(history());
      case 'showFlag':
        tell({ type: 'flag', flag: { id: payload && payload.id, title: payload && payload.title, description: payload && payload.description, type: (payload && payload.type) || 'info' } });
        return Promise.resolve(true);
      case 'on':
      case 'onPublic': {
        var event = payload && payload.event;
        (listeners[event] = listeners[event] || []).push(payload.callback);
        return Promise.resolve({ unsubscribe: function () {
          listeners[event] = (listeners[event] || []).filter(function (f) { return f !== payload.callback; });
        } });
      }
      case 'emit':
      case 'emitPublic': {
        (listeners[payload && payload.event] || []).forEach(function (fn) { fn(payload.payload); });
        return Promise.resolve(true);
      }
      case 'fetchProduct':
      case 'fetchRemote':
        return Promise.reject(new Error('requestConfluence/requestJira/requestRemote from a Custom UI are not simulated by the console: call a resolver instead'));
      case 'openModal':
        return Promise.reject(new Error('modals are not simulated by the console'));
      default:
        // submit, close, open, refresh, closeFlag, enableTheming, changeWindowTitle, ...
        return Promise.resolve(true);
    }
  }

  Object.defineProperty(window, '__bridge', {
    value: Object.freeze({ callBridge: callBridge }),
    writable: false,
    configurable: false,
  });

  // The console sizes the frame to its content, as the platform's iframe resizer does.
  function size() {
    tell({ type: 'resize', height: Math.ceil(document.documentElement.scrollHeight) });
  }
  addEventListener('load', function () {
    size();
    if (typeof ResizeObserver === 'function') new ResizeObserver(size).observe(document.documentElement);
  });
})();
