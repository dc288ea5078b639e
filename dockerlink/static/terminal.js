"use strict";
// The terminal page: xterm.js driving a WebSocket that speaks dockerlink's terminal protocol
// (binary frames carry raw bytes both ways; a text frame {"type":"resize","cols":C,"rows":R}
// resizes). The page is a template: <body data-socket> is the socket's URL, relative to the
// page, and <body data-token="required"> makes it send the API token (kept in sessionStorage,
// shared with the dashboard) as the "bearer.<base64url>" subprotocol. Nothing is loaded from
// anywhere but the page's own origin.
(() => {
  const TOKEN_KEY = "dockerlink.token";
  const SUBPROTOCOL = "dockerlink.terminal";
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const needsToken = body.dataset.token === "required";
  const encoder = new TextEncoder();
  const state = { socket: null, opened: false };

  const term = new Terminal({
    cursorBlink: true,
    convertEol: false,
    fontFamily: "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace",
    fontSize: 14,
    scrollback: 5000,
    theme: { background: "#101418" },
  });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open($("terminal"));
  fit.fit();

  function setStatus(text, status, bad) {
    $("status").textContent = text;
    $("status").classList.toggle("bad", Boolean(bad));
    body.dataset.status = status;
  }

  function socketURL() {
    const url = new URL(body.dataset.socket, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url;
  }

  function base64url(text) {
    let binary = "";
    for (const byte of encoder.encode(text)) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function send(data) {
    const socket = state.socket;
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(data);
  }

  function sendSize() {
    body.dataset.size = `${term.cols}x${term.rows}`;
    send(JSON.stringify({ type: "resize", cols: term.cols, rows: term.rows }));
  }

  function connect() {
    $("reconnect").hidden = true;
    if (needsToken && !token()) {
      askToken("This dockerlink needs its API token.");
      return;
    }
    const protocols = [SUBPROTOCOL];
    if (needsToken) protocols.push("bearer." + base64url(token()));
    setStatus("connecting…", "connecting");
    state.opened = false;
    const socket = new WebSocket(socketURL(), protocols);
    socket.binaryType = "arraybuffer";
    state.socket = socket;
    socket.addEventListener("open", () => {
      state.opened = true;
      setStatus("connected", "open");
      fit.fit();
      sendSize();
      term.focus();
    });
    socket.addEventListener("message", (event) => {
      term.write(typeof event.data === "string" ? event.data : new Uint8Array(event.data));
    });
    socket.addEventListener("close", (event) => {
      if (state.socket !== socket) return;
      state.socket = null;
      if (state.opened) {
        const why = event.reason || (event.code === 1006 ? "connection lost" : `code ${event.code}`);
        setStatus(`Session ended: ${why}.`, "closed", event.code !== 1000);
        term.write(`\r\n\x1b[2m[session ended: ${why}]\x1b[0m\r\n`);
        $("reconnect").hidden = false;
      } else {
        explainRefusal();
      }
    });
  }

  // A refused upgrade tells the browser nothing; the same URL over plain HTTP answers the
  // reason (401, 404, 409 not running, 412, 429) as one line of text.
  async function explainRefusal() {
    const url = socketURL();
    url.protocol = location.protocol;
    const headers = needsToken && token() ? { Authorization: "Bearer " + token() } : {};
    let status = 0, text = "";
    try {
      const response = await fetch(url, { headers, cache: "no-store" });
      status = response.status;
      text = (await response.text()).trim();
    } catch (e) {
      text = String(e.message || e);
    }
    if (status === 401 && needsToken) {
      sessionStorage.removeItem(TOKEN_KEY);
      askToken("The token was refused (401 unauthorized). Check it and try again.");
      return;
    }
    const detail = status && status !== 426 ? `${status} ${text}` : text || "no answer";
    setStatus(`Could not open the terminal: ${detail}`, "refused", true);
    $("reconnect").hidden = false;
  }

  function askToken(message) {
    setStatus("waiting for the API token", "auth", true);
    $("auth-message").textContent = message;
    $("auth").hidden = false;
    $("token").focus();
  }

  $("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    $("token").value = "";
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("auth").hidden = true;
    connect();
  });
  $("reconnect").addEventListener("click", () => {
    term.reset();
    connect();
  });

  term.onData((data) => send(encoder.encode(data)));
  term.onBinary((data) => send(Uint8Array.from(data, (c) => c.charCodeAt(0))));
  term.onResize(() => sendSize());

  // Copy and paste: Ctrl+Shift+C / Ctrl+Shift+V (Ctrl+C stays the shell's interrupt).
  function copySelection() {
    const text = term.getSelection();
    if (!text) return;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).catch(() => legacyCopy(text));
    } else {
      legacyCopy(text);
    }
  }
  function legacyCopy(text) {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    term.focus();
  }
  term.attachCustomKeyEventHandler((event) => {
    if (event.type !== "keydown" || !event.ctrlKey || !event.shiftKey) return true;
    if (event.code === "KeyC") {
      copySelection();
      event.preventDefault();
      return false;
    }
    if (event.code === "KeyV") {
      // Never ^V to the shell. Where the page may read the clipboard, read it; else (the
      // panels' iframe, from another site, without allow="clipboard-read") leave the key to
      // the browser's own paste, which xterm takes as a paste event.
      if (clipboardReadable() && navigator.clipboard && navigator.clipboard.readText) {
        navigator.clipboard.readText().then((text) => term.paste(text), () => {});
        event.preventDefault();
      }
      return false;
    }
    return true;
  });

  function clipboardReadable() {
    const policy = document.permissionsPolicy || document.featurePolicy;
    if (policy && typeof policy.allowsFeature === "function") {
      return policy.allowsFeature("clipboard-read");
    }
    return window.top === window; // browsers without the policy API: top-level pages only
  }

  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => fit.fit(), 50);
  });

  connect();
})();
