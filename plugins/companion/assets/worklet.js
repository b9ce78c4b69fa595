// The headset's audio in the page's audio thread: `capture` hands the microphone to the page in
// 20 ms blocks; `play` plays the party's mix through a small jitter buffer (it starts once 60 ms
// are queued, keeps at most 200 ms, and after running dry waits for 60 ms again).
"use strict";

const FRAME = 960;

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(FRAME);
    this.filled = 0;
  }

  process(inputs) {
    const samples = inputs[0] && inputs[0][0];
    if (samples) {
      for (let i = 0; i < samples.length; i++) {
        this.block[this.filled++] = samples[i];
        if (this.filled === FRAME) {
          this.port.postMessage(this.block, [this.block.buffer]);
          this.block = new Float32Array(FRAME);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

class Play extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];
    this.at = 0;
    this.queued = 0;
    this.playing = false;
    this.underruns = 0;
    this.port.onmessage = (e) => {
      this.queue.push(e.data);
      this.queued += e.data[0].length;
      while (this.queued > FRAME * 10) {
        this.queued -= this.queue.shift()[0].length - this.at;
        this.at = 0;
      }
    };
  }

  process(_inputs, outputs) {
    const [left, right] = outputs[0];
    if (!this.playing && this.queued >= FRAME * 3) this.playing = true;
    for (let i = 0; i < left.length; i++) {
      if (!this.playing || this.queue.length === 0) {
        left[i] = 0;
        if (right) right[i] = 0;
        continue;
      }
      const [l, r] = this.queue[0];
      left[i] = l[this.at];
      if (right) right[i] = r[this.at];
      this.at++;
      this.queued--;
      if (this.at === l.length) {
        this.queue.shift();
        this.at = 0;
        if (this.queue.length === 0) {
          this.playing = false;
          this.underruns++;
          this.port.postMessage({ underruns: this.underruns });
        }
      }
    }
    return true;
  }
}

registerProcessor("capture", Capture);
registerProcessor("play", Play);
