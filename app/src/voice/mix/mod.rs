//! The positional mix: every member is a streaming source on its own kira spatial track, placed
//! relative to the local listener's position and facing. Without positions (the default for
//! parties whose game feeds none) every voice is centred at full volume.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::{Context, Result, anyhow};
use kira::track::{SpatialTrackBuilder, SpatialTrackHandle, TrackPlaybackState};
use kira::{AudioManager, AudioManagerSettings, Capacities, Decibels, Easing, Tween};
use libp2p::PeerId;
use partyline_protocol::voice::Pose;

use super::codec::SAMPLE_RATE;
use super::output::{OutputBackend, OutputTarget};

mod sounds;
pub(crate) use sounds::PlaybackCounters;
use sounds::{ClockSoundData, RingSoundData};

/// Decoded audio buffered per member between the voice thread and the audio thread (1 s).
const RING: usize = SAMPLE_RATE as usize;
/// How strongly direction pans a positioned voice (0: not at all, 1: fully to one ear).
pub(crate) const DEFAULT_SPATIALIZATION: f32 = 0.75;

/// How voices fade with distance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpatialSettings {
    /// Closer than this, a voice is at full volume (metres).
    pub min_distance: f32,
    /// From here on, a voice is silent (metres).
    pub max_distance: f32,
    /// Curve of the fade in decibels between the two distances: 1 is linear in dB; above 1 keeps
    /// voices loud longer, below 1 fades them sooner.
    pub rolloff: f32,
}

impl Default for SpatialSettings {
    fn default() -> Self {
        // Squad distances in shooters: a teammate 2 m away is at full volume, one 60 m away fades
        // out.
        Self { min_distance: 2.0, max_distance: 60.0, rolloff: 1.0 }
    }
}

impl SpatialSettings {
    fn easing(&self) -> Easing {
        if (self.rolloff - 1.0).abs() < 1e-3 {
            Easing::Linear
        } else {
            Easing::InPowf(f64::from(self.rolloff))
        }
    }
}

struct Member {
    /// Paused while the member is silent: kira spatializes every sample of a playing track, so
    /// a quiet party would otherwise cost as much as a talking one.
    track: SpatialTrackHandle,
    /// The last pause (`false`) or resume (`true`) written to the track.
    sent: Option<bool>,
    volume: f32,
    muted: bool,
    pose: Option<Pose>,
}

pub(crate) struct Mixer {
    manager: AudioManager<OutputBackend>,
    /// Samples (48 kHz) the output has rendered: the output device's clock.
    rendered: Arc<AtomicU64>,
    listener: kira::listener::ListenerHandle,
    listener_pose: Option<Pose>,
    members: HashMap<PeerId, Member>,
    settings: SpatialSettings,
}

fn to_position(p: &Pose) -> mint::Vector3<f32> {
    mint::Vector3 { x: p.x, y: p.y, z: p.z }
}

/// A rotation about the vertical axis: yaw 0 faces -z, positive yaw turns left (towards -x).
fn to_orientation(yaw: f32) -> mint::Quaternion<f32> {
    let half = yaw / 2.0;
    mint::Quaternion { v: mint::Vector3 { x: 0.0, y: half.sin(), z: 0.0 }, s: half.cos() }
}

impl Mixer {
    pub(crate) fn new(target: OutputTarget, settings: SpatialSettings) -> Result<Self> {
        let capacities = Capacities { sub_track_capacity: 256, ..Capacities::default() };
        let mut manager = AudioManager::<OutputBackend>::new(AudioManagerSettings {
            capacities,
            backend_settings: target,
            ..AudioManagerSettings::default()
        })
        .context("cannot start audio output")?;
        let listener = manager
            .add_listener(mint::Vector3 { x: 0.0, y: 0.0, z: 0.0 }, to_orientation(0.0))
            .map_err(|_| anyhow!("cannot create the audio listener"))?;
        let rendered = Arc::new(AtomicU64::new(0));
        manager
            .play(ClockSoundData(rendered.clone()))
            .map_err(|_| anyhow!("cannot start the output's clock"))?;
        Ok(Self { manager, rendered, listener, listener_pose: None, members: HashMap::new(), settings })
    }

    /// The most audio the output takes at once (48 kHz samples): what must wait ready for it.
    pub(crate) fn block_samples(&mut self) -> usize {
        self.manager.backend_mut().block_samples()
    }

    /// Adds a member; returns where to push its decoded 48 kHz audio.
    pub(crate) fn add_member(
        &mut self,
        peer: PeerId,
    ) -> Result<(rtrb::Producer<f32>, Arc<PlaybackCounters>)> {
        let builder = SpatialTrackBuilder::new()
            .distances((self.settings.min_distance, self.settings.max_distance))
            .attenuation_function(Some(self.settings.easing()))
            .spatialization_strength(0.0);
        let mut track = self
            .manager
            .add_spatial_sub_track(&self.listener, mint::Vector3 { x: 0.0, y: 0.0, z: 0.0 }, builder)
            .map_err(|_| anyhow!("too many members for the mixer"))?;
        let (producer, consumer) = rtrb::RingBuffer::new(RING);
        let counters = Arc::new(PlaybackCounters { rendered: self.rendered.clone(), ..Default::default() });
        track
            .play(RingSoundData { consumer, counters: counters.clone() })
            .map_err(|_| anyhow!("cannot start a member's audio"))?;
        track.pause(Tween { duration: std::time::Duration::ZERO, ..Tween::default() });
        let member = Member { track, sent: Some(false), volume: 1.0, muted: false, pose: None };
        self.members.insert(peer, member);
        self.place(peer);
        self.apply_volume(peer);
        Ok((producer, counters))
    }

    /// Takes over what the user set on `old`, a mixer on other speakers: the listener's place and
    /// each member's volume and silence (members must have been added to this one first).
    pub(crate) fn keep_settings_of(&mut self, old: &Mixer) {
        self.set_listener_pose(old.listener_pose);
        for (peer, m) in &old.members {
            if let Some(new) = self.members.get_mut(peer) {
                (new.volume, new.muted) = (m.volume, m.muted);
                self.apply_volume(*peer);
            }
        }
    }

    pub(crate) fn remove_member(&mut self, peer: &PeerId) {
        self.members.remove(peer);
    }

    /// `volume` is a linear factor: 1 as sent, 0 silent, up to 2.
    pub(crate) fn set_volume(&mut self, peer: &PeerId, volume: f32) {
        if let Some(m) = self.members.get_mut(peer) {
            m.volume = volume.clamp(0.0, 2.0);
        }
        self.apply_volume(*peer);
    }

    pub(crate) fn set_muted(&mut self, peer: &PeerId, muted: bool) {
        if let Some(m) = self.members.get_mut(peer) {
            m.muted = muted;
        }
        self.apply_volume(*peer);
    }

    /// Starts or stops mixing a member: active while it has audio to play. Called every tick, it
    /// reconciles what the audio thread reports with what is wanted: kira keeps the latest pause
    /// and the latest resume in two separate slots, so a pause and a resume written close together
    /// can be applied in the wrong order; the next call then sees the mismatch and writes again.
    pub(crate) fn set_active(&mut self, peer: &PeerId, active: bool) {
        let Some(m) = self.members.get_mut(peer) else { return };
        let playing = matches!(m.track.state(), TrackPlaybackState::Playing | TrackPlaybackState::Resuming);
        if active != playing || m.sent != Some(active) {
            m.sent = Some(active);
            let instant = Tween { duration: std::time::Duration::ZERO, ..Tween::default() };
            if active { m.track.resume(instant) } else { m.track.pause(instant) }
        }
    }

    /// Plays the push-to-talk cue for the microphone going on air (`true`) or off.
    pub(crate) fn cue(&mut self, on: bool) {
        if let Err(e) = self.manager.play(super::cue::tone(on)) {
            tracing::debug!("cannot play a cue: {e}");
        }
    }

    pub(crate) fn set_deafened(&mut self, deafened: bool) {
        let volume = if deafened { Decibels::SILENCE } else { Decibels::IDENTITY };
        self.manager.main_track().set_volume(volume, Tween::default());
    }

    fn apply_volume(&mut self, peer: PeerId) {
        if let Some(m) = self.members.get_mut(&peer) {
            let amplitude = if m.muted { 0.0 } else { m.volume };
            let db = if amplitude <= 0.0 { Decibels::SILENCE } else { Decibels(20.0 * amplitude.log10()) };
            m.track.set_volume(db, Tween::default());
        }
    }

    /// The local listener's pose (from the game or typed), or `None` for no positions.
    pub(crate) fn set_listener_pose(&mut self, pose: Option<Pose>) {
        self.listener_pose = pose;
        let p = pose.unwrap_or_default();
        self.listener.set_position(to_position(&p), Tween::default());
        self.listener.set_orientation(to_orientation(p.yaw), Tween::default());
        let peers: Vec<PeerId> = self.members.keys().copied().collect();
        for peer in peers {
            self.place(peer);
        }
    }

    pub(crate) fn set_member_pose(&mut self, peer: &PeerId, pose: Option<Pose>) {
        match self.members.get_mut(peer) {
            Some(m) if m.pose != pose => m.pose = pose,
            _ => return,
        }
        self.place(*peer);
    }

    /// Positions a member: where its pose says when both sides have poses, else centred on the
    /// listener with no panning (the non-positional default).
    fn place(&mut self, peer: PeerId) {
        let listener = self.listener_pose;
        let Some(m) = self.members.get_mut(&peer) else { return };
        let instant = Tween { duration: std::time::Duration::ZERO, ..Tween::default() };
        match (listener, m.pose) {
            (Some(_), Some(pose)) => {
                m.track.set_position(to_position(&pose), Tween::default());
                m.track.set_spatialization_strength(DEFAULT_SPATIALIZATION, instant);
            }
            _ => {
                m.track.set_position(to_position(&listener.unwrap_or_default()), instant);
                m.track.set_spatialization_strength(0.0, instant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::output::ManualRenderer;
    use std::sync::atomic::Ordering;

    /// Renders `seconds` of a constant tone from one member at `pose` heard by a listener at
    /// `listener`; returns the mean absolute level of the left and right channels.
    fn render(listener: Option<Pose>, pose: Option<Pose>, settings: SpatialSettings) -> (f32, f32) {
        let slot: ManualRenderer = Arc::default();
        let mut mixer = Mixer::new(OutputTarget::Manual(slot.clone()), settings).unwrap();
        let peer = PeerId::random();
        let (mut producer, _) = mixer.add_member(peer).unwrap();
        mixer.set_listener_pose(listener);
        mixer.set_member_pose(&peer, pose);
        mixer.set_active(&peer, true);
        for _ in 0..SAMPLE_RATE / 2 {
            producer.push(0.5).unwrap();
        }
        let mut guard = slot.lock().unwrap();
        let renderer = guard.as_mut().unwrap();
        let mut buffer = vec![0.0f32; 2 * 1024];
        // Let parameter changes settle, then measure.
        for _ in 0..4 {
            renderer.on_start_processing();
            renderer.process(&mut buffer, 2);
        }
        renderer.on_start_processing();
        renderer.process(&mut buffer, 2);
        let left = buffer.iter().step_by(2).map(|s| s.abs()).sum::<f32>() / 1024.0;
        let right = buffer.iter().skip(1).step_by(2).map(|s| s.abs()).sum::<f32>() / 1024.0;
        (left, right)
    }

    fn at(x: f32, z: f32) -> Option<Pose> {
        Some(Pose { x, y: 0.0, z, yaw: 0.0 })
    }

    fn db(amplitude: f32) -> f32 {
        20.0 * amplitude.log10()
    }

    #[test]
    fn without_positions_voices_are_centred_at_full_volume() {
        let (l, r) = render(None, at(30.0, 0.0), SpatialSettings::default());
        assert!((l - 0.5).abs() < 0.01 && (r - 0.5).abs() < 0.01, "{l} {r}");
    }

    #[test]
    fn a_voice_to_the_right_is_louder_in_the_right_ear() {
        // Listener at the origin facing -z; speaker 1.5 m to the right (+x), within min distance.
        let (l, r) = render(at(0.0, 0.0), at(1.5, 0.0), SpatialSettings::default());
        // Ear gains follow kira's model: min + (1 - min) * (cos(angle to ear axis) + 1) / 2 with
        // the ears pointing ±x rotated 22.5° forward; for a source straight to the right that is
        // about 0.35 left and 0.98 right at 0.75 spatialization.
        let left_ear = (1.0 - DEFAULT_SPATIALIZATION)
            + DEFAULT_SPATIALIZATION * ((-(std::f32::consts::FRAC_PI_8).cos()) + 1.0) / 2.0;
        let right_ear = (1.0 - DEFAULT_SPATIALIZATION)
            + DEFAULT_SPATIALIZATION * ((std::f32::consts::FRAC_PI_8).cos() + 1.0) / 2.0;
        assert!((l - 0.5 * left_ear).abs() < 0.03, "left {l}, expected {}", 0.5 * left_ear);
        assert!((r - 0.5 * right_ear).abs() < 0.03, "right {r}, expected {}", 0.5 * right_ear);
    }

    #[test]
    fn turning_around_swaps_the_ears() {
        let facing_away = Some(Pose { x: 0.0, y: 0.0, z: 0.0, yaw: std::f32::consts::PI });
        let (l, r) = render(facing_away, at(1.5, 0.0), SpatialSettings::default());
        assert!(l > r * 2.0, "a source on +x is on the left when facing +z: {l} {r}");
        // Yaw +90° faces -x: a source at -x is straight ahead, equal in both ears.
        let facing_left = Some(Pose { x: 0.0, y: 0.0, z: 0.0, yaw: std::f32::consts::FRAC_PI_2 });
        let (l, r) = render(facing_left, at(-1.5, 0.0), SpatialSettings::default());
        assert!((l - r).abs() < 0.02, "{l} {r}");
    }

    #[test]
    fn distance_attenuates_linearly_in_decibels_between_min_and_max() {
        let settings = SpatialSettings { min_distance: 2.0, max_distance: 62.0, rolloff: 1.0 };
        // Straight ahead (no panning difference); halfway between min and max: -30 dB (kira fades
        // from 0 dB to -60 dB).
        let (near_l, _) = render(at(0.0, 0.0), at(0.0, -1.0), settings);
        let (mid_l, _) = render(at(0.0, 0.0), at(0.0, -32.0), settings);
        let (far_l, _) = render(at(0.0, 0.0), at(0.0, -80.0), settings);
        let drop = db(mid_l) - db(near_l);
        assert!((drop + 30.0).abs() < 1.5, "halfway is {drop} dB down");
        assert!(far_l < near_l * 0.002, "beyond max distance: silent ({far_l})");
    }

    #[test]
    fn silent_members_are_not_mixed() {
        let slot: ManualRenderer = Arc::default();
        let mut mixer = Mixer::new(OutputTarget::Manual(slot.clone()), SpatialSettings::default()).unwrap();
        let peer = PeerId::random();
        let (mut producer, counters) = mixer.add_member(peer).unwrap();
        let render = || {
            let mut guard = slot.lock().unwrap();
            let renderer = guard.as_mut().unwrap();
            let mut buffer = vec![0.0f32; 2 * 512];
            renderer.on_start_processing();
            renderer.process(&mut buffer, 2);
        };
        // Inactive: its sound is not even asked for samples.
        render();
        assert_eq!(counters.samples_played.load(Ordering::Relaxed), 0);
        mixer.set_active(&peer, true);
        producer.push(0.5).unwrap();
        render();
        assert!(counters.samples_played.load(Ordering::Relaxed) > 0);
        mixer.set_active(&peer, false);
        render();
        let played = counters.samples_played.load(Ordering::Relaxed);
        render();
        assert_eq!(counters.samples_played.load(Ordering::Relaxed), played);
    }

    #[test]
    fn volume_mute_and_deafen() {
        let slot: ManualRenderer = Arc::default();
        let mut mixer = Mixer::new(OutputTarget::Manual(slot.clone()), SpatialSettings::default()).unwrap();
        let peer = PeerId::random();
        let (mut producer, counters) = mixer.add_member(peer).unwrap();
        mixer.set_active(&peer, true);
        let level = |mixer: &mut Mixer, producer: &mut rtrb::Producer<f32>| {
            for _ in 0..4096 {
                let _ = producer.push(0.5);
            }
            let _ = mixer;
            let mut guard = slot.lock().unwrap();
            let renderer = guard.as_mut().unwrap();
            let mut buffer = vec![0.0f32; 2 * 512];
            for _ in 0..3 {
                renderer.on_start_processing();
                renderer.process(&mut buffer, 2);
            }
            buffer.iter().map(|s| s.abs()).sum::<f32>() / buffer.len() as f32
        };
        assert!((level(&mut mixer, &mut producer) - 0.5).abs() < 0.01);
        mixer.set_volume(&peer, 0.5);
        assert!((level(&mut mixer, &mut producer) - 0.25).abs() < 0.01);
        mixer.set_muted(&peer, true);
        assert!(level(&mut mixer, &mut producer) < 0.001);
        mixer.set_muted(&peer, false);
        mixer.set_deafened(true);
        assert!(level(&mut mixer, &mut producer) < 0.001);
        assert!(counters.samples_played.load(Ordering::Relaxed) > 0);
    }
}
