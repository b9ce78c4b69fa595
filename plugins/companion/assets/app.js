// The companion page: pairs with the desktop from the link's fragment (#TOKEN.FINGERPRINT),
// then keeps its credential in this browser and becomes the remote (remote.js). Plain
// JavaScript, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "partyline-credential";

function say(text, error) {
  const s = $("status");
  s.textContent = text;
  s.className = error ? "error" : "";
}

function b64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function hex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
  return out;
}

// The same six digits the desktop shows: SHA-256 over a label, the certificate's fingerprint
// (from the link), the token and our nonce.
async function code(fingerprint, token, nonce) {
  const enc = new TextEncoder();
  const parts = [enc.encode("partyline companion pairing v1\0"), hex(fingerprint), enc.encode(token), nonce];
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.length; }
  const d = new DataView(await crypto.subtle.digest("SHA-256", all));
  return String(d.getUint32(0) % 1000000).padStart(6, "0");
}

async function me(credential) {
  const r = await fetch("/api/me", { headers: { Authorization: "Bearer " + credential } });
  return r.ok ? r.json() : null;
}

async function waitForConfirmation(credential) {
  for (;;) {
    const who = await me(credential).catch(() => null);
    if (who) return who;
    await new Promise((done) => setTimeout(done, 1000));
  }
}

async function pair(token, fingerprint) {
  if (!window.isSecureContext || !crypto.subtle) {
    say("This page needs a secure connection (https) to pair.", true);
    return;
  }
  const nonce = crypto.getRandomValues(new Uint8Array(16));
  const name = (navigator.userAgentData && navigator.userAgentData.platform) || navigator.platform || "device";
  const r = await fetch("/api/pair", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token, nonce: b64url(nonce), name }),
  });
  const answer = await r.json().catch(() => ({ error: "the desktop did not answer" }));
  if (!r.ok) {
    say(answer.error || "pairing was refused", true);
    return;
  }
  const mine = await code(fingerprint, token, nonce);
  if (mine !== answer.code) {
    say("The desktop's code does not match this page's: do not confirm it.", true);
    return;
  }
  history.replaceState(null, "", "/");
  localStorage.setItem(KEY, answer.credential);
  say("Confirm this code on your desktop:");
  $("code").textContent = answer.code;
  $("code").hidden = false;
  const who = await waitForConfirmation(answer.credential);
  $("code").hidden = true;
  paired(who, answer.credential);
}

function paired(who, credential) {
  say("Paired as " + who.name + ".");
  remote.start(credential, who.name, () => {
    say("This device is not paired (or was revoked): scan the desktop's code again.", true);
  });
}

async function start() {
  const fragment = location.hash.slice(1);
  const stored = localStorage.getItem(KEY);
  if (fragment) {
    const [token, fingerprint] = fragment.split(".");
    await pair(token, fingerprint || "");
  } else if (stored) {
    let who;
    try {
      who = await me(stored);
    } catch (_) {
      say("The desktop cannot be reached: trying again…", true);
      setTimeout(run, 3000);
      return;
    }
    if (who) paired(who, stored);
    else say("This device is not paired (or was revoked): scan the desktop's code again.", true);
  } else {
    say("Scan the pairing code the desktop shows (/pair-device).");
  }
}

const run = () => start().catch((e) => say("Something went wrong: " + e, true));
// A new link opened while the page is open changes only the fragment.
window.addEventListener("hashchange", run);
run();
