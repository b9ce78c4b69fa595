//! What the voice thread reports: reception reports to each member (and the FEC tuned to
//! theirs), and the statistics `/stats` shows.

use std::time::Instant;

use super::{Engine, REDUNDANCY_FROM_PERCENT, REPORT_MAX_AGE};
use crate::events::{MemberVoiceStats, VoiceStats};
use crate::voice::VoiceOut;

impl Engine {
    /// Tells each member how its voice arrives, and tunes our FEC to what they tell us.
    pub(super) fn report(&mut self, now: Instant) {
        for (peer, member) in &mut self.members {
            // Too few frames yet to tell: the window goes on, the last report stands.
            let Some(reception) = member.take_window(now) else { continue };
            self.last_reception.insert(*peer, reception);
            // Nothing heard, nothing to say: the talker keeps the last report between talk spurts.
            if reception.frames == 0 {
                continue;
            }
            let _ = self.out.try_send(VoiceOut::Report {
                peer: *peer,
                loss_permille: (reception.loss * 1000.0).round() as u16,
                jitter_ms: reception.jitter_ms.round() as u16,
            });
        }
        self.reports.retain(|_, (_, at)| now.duration_since(*at) < REPORT_MAX_AGE);
        let worst = self.reports.values().map(|(permille, _)| *permille).max().unwrap_or(0);
        let percent = u8::try_from(worst.div_ceil(10)).unwrap_or(u8::MAX);
        if percent != self.encoder.expected_loss() {
            tracing::info!(percent, "tuning FEC to the loss members report");
            let _ = self.encoder.set_expected_loss(percent);
        }
        let (bytes, since) = self.sent_window;
        let seconds = now.duration_since(since).as_secs_f32().max(0.001);
        self.sent_kbps = (self.sender.sent_bytes - bytes) as f32 * 8.0 / 1000.0 / seconds;
        self.sent_window = (self.sender.sent_bytes, now);
    }

    pub(super) fn stats(&self) -> VoiceStats {
        let members = self
            .members
            .iter()
            .map(|(peer, m)| {
                let s = m.stats();
                let r = self.last_reception.get(peer).copied().unwrap_or_default();
                let (faster_ms, slower_ms) = m.time_scaled_ms();
                MemberVoiceStats {
                    peer: *peer,
                    name: m.name.clone(),
                    loss: r.loss,
                    jitter_ms: r.jitter_ms,
                    buffer_ms: m.buffered_ms(),
                    ring_ms: m.ring_ms(),
                    wait_ms: m.wait_ms(),
                    target_ms: m.target_ms(),
                    kbps: r.kbps,
                    received: s.received,
                    lost: s.lost,
                    fec: s.fec,
                    recovered: s.recovered,
                    concealed: s.concealed,
                    late: s.late,
                    dropped: s.dropped + s.overflow,
                    faster_ms,
                    slower_ms,
                    underruns: m.underruns(),
                    speaking: m.speaking,
                }
            })
            .collect();
        VoiceStats {
            input: self.capture.as_ref().map(|c| c.description.clone()),
            output: self.mixer.as_ref().map(|_| self.config.output.describe()),
            input_level_db: self.dsp.as_ref().map_or(-90.0, |d| d.level_db()),
            input_overruns: self.input_overruns
                + self
                    .capture
                    .as_ref()
                    .map_or(0, |c| c.status.overruns.load(std::sync::atomic::Ordering::Relaxed)),
            input_block_ms: self.capture.as_ref().map_or(0.0, |c| {
                c.status.largest_block.swap(0, std::sync::atomic::Ordering::Relaxed) as f32 * 1000.0
                    / c.rate as f32
            }),
            mode: self.config.gate.mode.to_string(),
            talking: self.talking,
            sent_kbps: self.sent_kbps,
            fec_loss_percent: self.encoder.expected_loss(),
            redundancy: self.encoder.expected_loss() >= REDUNDANCY_FROM_PERCENT,
            unknown_frames: self.unknown_frames,
            malformed_frames: self.malformed_frames,
            members,
            ..VoiceStats::default()
        }
    }
}
