// The remote: once paired, the page keeps a WebSocket to the desktop (same origin), draws what
// the companion plugin sends (members, who speaks, mute and deafen, chat) and sends what the
// buttons do. It reconnects by itself and says when the desktop cannot be reached.
"use strict";

const remote = (() => {
  const $ = (id) => document.getElementById(id);
  // Close codes of the gateway: this device is not (or no longer) paired.
  const UNPAIRED = [4001, 4003];
  let socket = null;
  let retry = 0;
  let state = { members: [], muted: false, deafened: false, latched: false };
  let onUnpaired = () => {};
  let myName = null;

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function link(text, down) {
    $("link").textContent = text;
    $("link").className = down ? "link down" : "link";
  }

  function pressed(id, on) {
    $(id).setAttribute("aria-pressed", on ? "true" : "false");
  }

  function drawVoice() {
    pressed("mute", state.muted);
    pressed("deafen", state.deafened);
    pressed("latch", state.latched);
    $("ptt").classList.toggle("down", state.latched || talking);
  }

  function drawMembers() {
    const list = $("members");
    list.replaceChildren();
    for (const m of state.members) {
      const li = document.createElement("li");
      li.dataset.id = m.id;
      li.dataset.speaking = m.speaking ? "true" : "false";
      li.classList.toggle("speaking", m.speaking);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = m.name + (m.me ? " (you)" : "") + (m.owner ? " ★" : "");
      li.append(name);
      if (!m.me) {
        const volume = document.createElement("input");
        volume.type = "range";
        volume.min = "0";
        volume.max = "200";
        volume.value = String(m.volume);
        volume.title = "Volume of " + m.name;
        volume.addEventListener("change", () => send({ type: "volume", id: m.id, percent: Number(volume.value) }));
        li.append(volume);
      }
      list.append(li);
    }
  }

  // The party's invite link and its QR code, for a friend to scan off this screen.
  function drawInvite(invite) {
    $("invite").hidden = !invite;
    if (!invite) return;
    $("invite-qr").replaceChildren(panels.qr(invite.qr));
    $("invite-link").textContent = invite.link;
  }

  function chatLine(from, text) {
    const li = document.createElement("li");
    const who = document.createElement("b");
    who.textContent = from + ": ";
    li.append(who, document.createTextNode(text));
    $("chat").append(li);
    while ($("chat").children.length > 100) $("chat").firstChild.remove();
    li.scrollIntoView({ block: "nearest" });
  }

  function receive(message) {
    switch (message.type) {
      case "state":
        state = message;
        headset.is(message.headset, myName);
        drawInvite(message.invite);
        drawMembers();
        drawVoice();
        $("chat").replaceChildren();
        for (const line of message.chat) chatLine(line.from, line.text);
        break;
      case "speaking": {
        const m = state.members.find((m) => m.id === message.id);
        if (m) m.speaking = message.on;
        drawMembers();
        break;
      }
      case "voice":
        state.muted = message.muted;
        state.deafened = message.deafened;
        drawVoice();
        break;
      case "latch":
        state.latched = message.on;
        drawVoice();
        break;
      case "chat":
        chatLine(message.from, message.text);
        break;
      case "headset":
        headset.is(message.device, myName);
        break;
      case "invite":
        drawInvite(message);
        break;
      case "panel":
        panels.draw(message, send);
        break;
      case "toast":
        panels.toast(message);
        break;
      case "error":
        $("problem").textContent = message.text;
        $("problem").hidden = false;
        setTimeout(() => { $("problem").hidden = true; }, 4000);
        break;
    }
  }

  function connect(credential) {
    socket = new WebSocket("wss://" + location.host + "/api/socket");
    socket.binaryType = "arraybuffer";
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ credential }));
      retry = 0;
      link("Connected to the desktop.", false);
    });
    socket.addEventListener("message", (e) => {
      if (e.data instanceof ArrayBuffer) return headset.receive(new Uint8Array(e.data));
      try { receive(JSON.parse(e.data)); } catch (_) { /* not ours */ }
    });
    socket.addEventListener("close", (e) => {
      socket = null;
      if (UNPAIRED.includes(e.code)) {
        $("remote").hidden = true;
        onUnpaired(e.reason);
        return;
      }
      retry = Math.min(retry + 1, 5);
      link("The desktop cannot be reached: trying again…", true);
      setTimeout(() => connect(credential), retry * 1000);
    });
  }

  // Push-to-talk: held with a finger, the mouse, the space bar or a gamepad's first button.
  let talking = false;
  function talk(down) {
    if (down === talking) return;
    talking = down;
    send({ type: "ptt", down });
    drawVoice();
  }

  function wire() {
    const ptt = $("ptt");
    ptt.addEventListener("pointerdown", (e) => { ptt.setPointerCapture?.(e.pointerId); talk(true); });
    for (const end of ["pointerup", "pointercancel", "lostpointercapture"]) ptt.addEventListener(end, () => talk(false));
    ptt.addEventListener("contextmenu", (e) => e.preventDefault());
    document.addEventListener("keydown", (e) => { if (e.code === "Space" && e.target.tagName !== "INPUT") { e.preventDefault(); talk(true); } });
    document.addEventListener("keyup", (e) => { if (e.code === "Space" && e.target.tagName !== "INPUT") talk(false); });
    $("latch").addEventListener("click", () => send({ type: "latch", on: !state.latched }));
    $("mute").addEventListener("click", () => send({ type: "mute", on: !state.muted }));
    $("deafen").addEventListener("click", () => send({ type: "deafen", on: !state.deafened }));
    $("say").addEventListener("submit", (e) => {
      e.preventDefault();
      const text = $("line").value.trim();
      if (text) send({ type: "chat", text });
      $("line").value = "";
    });
    window.addEventListener("gamepadconnected", pollGamepads);
    headset.wire((data) => { if (socket && socket.readyState === WebSocket.OPEN) socket.send(data); });
    document.addEventListener("visibilitychange", () => { if (document.hidden) talk(false); });
  }

  let polling = false;
  let padDown = false;
  function pollGamepads() {
    if (polling) return;
    polling = true;
    const tick = () => {
      const pads = navigator.getGamepads ? [...navigator.getGamepads()].filter(Boolean) : [];
      if (pads.length === 0) { polling = false; return; }
      // Only a change of the button talks: a pad left alone does not cancel the screen's button.
      const down = pads.some((p) => p.buttons[0] && p.buttons[0].pressed);
      if (down !== padDown) {
        padDown = down;
        talk(down);
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  let wired = false;
  return {
    start(credential, name, unpaired) {
      onUnpaired = unpaired;
      myName = name;
      if (!wired) { wire(); wired = true; }
      if (socket) return;
      $("remote").hidden = false;
      link("Connecting…", false);
      connect(credential);
    },
  };
})();
