// The page as the player's headset: the microphone (echo cancellation and noise suppression on)
// encoded to Opus with WebCodecs and sent over the socket, the party's mix decoded and played
// through a small jitter buffer (worklet.js). Where the browser cannot (no secure context, no
// microphone, no Opus), the page says why and stays a remote.
"use strict";

const headset = (() => {
  const $ = (id) => document.getElementById(id);
  const MIC = 1, MIX = 2;
  let audio = null;
  let send = () => {};
  let active = false;
  // What the tests read back: packets sent, frames decoded and their loudness.
  const stats = { sent: 0, decoded: 0, loud: 0, peak: 0, underruns: 0, micStartedAt: null };
  window.headsetStats = stats;

  async function missing() {
    if (!window.isSecureContext) return "This page is not on a secure (https) connection, so the browser offers no microphone: it stays a remote.";
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return "This browser offers pages no microphone: it stays a remote.";
    if (typeof AudioEncoder === "undefined" || typeof AudioDecoder === "undefined") return "This browser cannot encode voice (no WebCodecs): it stays a remote.";
    if (typeof AudioWorkletNode === "undefined") return "This browser cannot play audio from a page's worklet: it stays a remote.";
    const no = { supported: false };
    const enc = await AudioEncoder.isConfigSupported({ codec: "opus", sampleRate: 48000, numberOfChannels: 1, bitrate: 32000 }).catch(() => no);
    const dec = await AudioDecoder.isConfigSupported({ codec: "opus", sampleRate: 48000, numberOfChannels: 2 }).catch(() => no);
    if (!enc.supported || !dec.supported) return "This browser has no Opus codec: it stays a remote.";
    return null;
  }

  async function open() {
    const ctx = new AudioContext({ sampleRate: 48000, latencyHint: "interactive" });
    await ctx.audioWorklet.addModule("/worklet.js");
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    let micTime = 0;
    const encoder = new AudioEncoder({
      output: (chunk) => {
        if (!active) return;
        const frame = new Uint8Array(chunk.byteLength + 1);
        frame[0] = MIC;
        chunk.copyTo(frame.subarray(1));
        send(frame);
        stats.sent++;
      },
      error: (e) => problem("The voice encoder stopped: " + e.message),
    });
    encoder.configure({ codec: "opus", sampleRate: 48000, numberOfChannels: 1, bitrate: 32000 });
    const capture = new AudioWorkletNode(ctx, "capture", { numberOfOutputs: 1 });
    capture.port.onmessage = (e) => {
      if (stats.micStartedAt === null) stats.micStartedAt = Date.now();
      encoder.encode(new AudioData({ format: "f32", sampleRate: 48000, numberOfFrames: e.data.length, numberOfChannels: 1, timestamp: micTime, data: e.data }));
      micTime += 20000;
    };
    const mute = new GainNode(ctx, { gain: 0 });
    ctx.createMediaStreamSource(stream).connect(capture).connect(mute).connect(ctx.destination);

    const play = new AudioWorkletNode(ctx, "play", { numberOfInputs: 0, outputChannelCount: [2] });
    play.port.onmessage = (e) => { stats.underruns = e.data.underruns; };
    play.connect(ctx.destination);
    const decoder = new AudioDecoder({
      output: (data) => {
        const n = data.numberOfFrames;
        const left = new Float32Array(n), right = new Float32Array(n);
        data.copyTo(left, { planeIndex: 0, format: "f32-planar" });
        data.copyTo(right, { planeIndex: data.numberOfChannels > 1 ? 1 : 0, format: "f32-planar" });
        data.close();
        let sum = 0;
        for (let i = 0; i < n; i++) sum += left[i] * left[i];
        const rms = Math.sqrt(sum / n);
        stats.decoded++;
        if (rms > 0.01) stats.loud++;
        stats.peak = Math.max(stats.peak, rms);
        play.port.postMessage([left, right], [left.buffer, right.buffer]);
      },
      error: (e) => problem("The voice decoder stopped: " + e.message),
    });
    decoder.configure({ codec: "opus", sampleRate: 48000, numberOfChannels: 2 });
    await ctx.resume();
    return { ctx, stream, encoder, decoder, mixTime: 0 };
  }

  function close() {
    active = false;
    stats.micStartedAt = null;
    if (!audio) return;
    audio.stream.getTracks().forEach((t) => t.stop());
    audio.encoder.close();
    audio.decoder.close();
    audio.ctx.close();
    audio = null;
  }

  function problem(text) {
    $("headset-why").textContent = text;
    $("headset-why").hidden = false;
  }

  function draw(on) {
    $("headset").setAttribute("aria-pressed", on ? "true" : "false");
    $("headset").textContent = on ? "Back to the PC" : "Use as headset";
  }

  return {
    wire(sender) {
      send = sender;
      $("headset").addEventListener("click", async () => {
        if (audio) {
          close();
          draw(false);
          send(JSON.stringify({ type: "headset", on: false }));
          return;
        }
        const why = await missing();
        if (why) return problem(why);
        try {
          audio = await open();
        } catch (e) {
          close();
          return problem("The microphone could not be opened: " + e.message);
        }
        $("headset-why").hidden = true;
        send(JSON.stringify({ type: "headset", on: true }));
      });
    },

    // Which device the desktop says is the headset now.
    is(device, me) {
      if (audio && device !== me) close();
      active = Boolean(audio);
      draw(active);
    },

    receive(bytes) {
      if (!audio || bytes[0] !== MIX || audio.decoder.state !== "configured") return;
      audio.decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: audio.mixTime, data: bytes.subarray(1) }));
      audio.mixTime += 20000;
    },
  };
})();
