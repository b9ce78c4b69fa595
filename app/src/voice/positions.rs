//! Where the local player stands: typed (`/pos x y z yaw`) or read from the MumbleLink shared
//! memory that many games and mods already fill for positional voice; and telling front ends
//! where the games put everyone.
//!
//! MumbleLink (Linux: the file `/dev/shm/MumbleLink.<uid>`) starts with
//! `u32 version, u32 tick, f32 avatar_position[3], f32 avatar_front[3], f32 avatar_top[3], …` in
//! a left-handed frame (x right, y up, z forward, metres). A game is feeding it while `tick` keeps
//! changing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use partyline_protocol::voice::Pose;

use crate::events::{MemberPose, NodeEvent};

/// A game that stopped updating the link this long ago no longer places us.
const STALE: Duration = Duration::from_secs(1);
/// Front ends hear of moves this often at most.
const REPORT_EVERY: Duration = Duration::from_millis(200);

/// The positions front ends last heard of; they hear again only of a change, and at most every
/// [`REPORT_EVERY`].
#[derive(Default)]
pub(crate) struct PositionsReport {
    last: (Option<Pose>, Vec<MemberPose>),
    at: Option<Instant>,
}

impl PositionsReport {
    /// The event to send now, if any. `members` lists them in a stable order (by peer); it is
    /// called only when a report may go out.
    pub(crate) fn next(
        &mut self,
        me: Option<Pose>,
        members: impl FnOnce() -> Vec<MemberPose>,
        now: Instant,
    ) -> Option<NodeEvent> {
        if self.at.is_some_and(|at| now.duration_since(at) < REPORT_EVERY) {
            return None;
        }
        let members = members();
        if self.last.0 == me && self.last.1 == members {
            return None;
        }
        self.at = Some(now);
        self.last = (me, members.clone());
        Some(NodeEvent::Positions { me, members })
    }
}

/// Parses `x y z yaw` (metres, degrees).
pub(crate) fn parse_pose(text: &str) -> Result<Pose, String> {
    let values: Vec<f32> = text
        .split_whitespace()
        .map(|v| v.parse::<f32>().map_err(|_| format!("not a number: {v:?}")))
        .collect::<Result<_, _>>()?;
    match values.as_slice() {
        [x, y, z, yaw] => {
            let pose = Pose { x: *x, y: *y, z: *z, yaw: yaw.to_radians() };
            if pose.is_finite() { Ok(pose) } else { Err("position must be finite".into()) }
        }
        [x, y, z] => Ok(Pose { x: *x, y: *y, z: *z, yaw: 0.0 }),
        _ => Err("usage: /pos X Y Z [YAW]: metres, and degrees turned left from facing -z".into()),
    }
}

/// Reads the MumbleLink file a game writes.
pub(crate) struct MumbleLink {
    path: PathBuf,
    last_tick: Option<u32>,
    last_change: Option<Instant>,
}

impl MumbleLink {
    pub(crate) fn new() -> Self {
        Self::at(default_path())
    }

    pub(crate) fn at(path: PathBuf) -> Self {
        Self { path, last_tick: None, last_change: None }
    }

    /// The pose the game reports now, or `None` if no game is feeding the link.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<Pose> {
        let bytes = std::fs::read(&self.path).ok()?;
        let (tick, pose) = decode(&bytes)?;
        if self.last_tick != Some(tick) {
            self.last_tick = Some(tick);
            self.last_change = Some(now);
        }
        let fresh = self.last_change.is_some_and(|at| now.duration_since(at) < STALE);
        fresh.then_some(pose)
    }
}

fn default_path() -> PathBuf {
    // The file Mumble's plugins create with shm_open("/MumbleLink.<uid>").
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(0);
    PathBuf::from(format!("/dev/shm/MumbleLink.{uid}"))
}

/// The tick and avatar pose in a MumbleLink block, converted to Partyline's right-handed frame
/// (x right, y up, -z forward; yaw turns left).
pub(crate) fn decode(bytes: &[u8]) -> Option<(u32, Pose)> {
    let word = |i: usize| bytes.get(i * 4..i * 4 + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let float = |i: usize| word(i).map(f32::from_bits);
    let version = word(0)?;
    if version == 0 {
        return None;
    }
    let tick = word(1)?;
    let (x, y, z) = (float(2)?, float(3)?, float(4)?);
    let (fx, fz) = (float(5)?, float(7)?);
    // Mumble's z points forward; ours points backward.
    let pose = Pose { x, y, z: -z, yaw: (-fx).atan2(fz) };
    pose.is_finite().then_some((tick, pose))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_ends_hear_of_changes_only_and_a_few_times_a_second() {
        let mut report = PositionsReport::default();
        let t0 = Instant::now();
        let pose = |x| Pose { x, y: 0.0, z: 0.0, yaw: 0.0 };
        let bob = |x| vec![MemberPose { peer: libp2p::PeerId::random(), name: "bob".into(), pose: pose(x) }];
        // Nobody placed by a game: nothing to say.
        assert_eq!(report.next(None, Vec::new, t0), None);
        let first = bob(1.0);
        assert!(report.next(Some(pose(0.0)), || first.clone(), t0).is_some());
        // A move 100 ms later waits; 200 ms later it goes out; the same again does not.
        assert_eq!(report.next(Some(pose(5.0)), || first.clone(), t0 + Duration::from_millis(100)), None);
        let later = t0 + REPORT_EVERY;
        assert_eq!(
            report.next(Some(pose(5.0)), || first.clone(), later),
            Some(NodeEvent::Positions { me: Some(pose(5.0)), members: first.clone() })
        );
        assert_eq!(report.next(Some(pose(5.0)), || first.clone(), later + REPORT_EVERY), None);
    }

    fn block(tick: u32, pos: [f32; 3], front: [f32; 3]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&tick.to_le_bytes());
        for v in pos.iter().chain(&front).chain(&[0.0, 1.0, 0.0]) {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.resize(5460, 0);
        b
    }

    #[test]
    fn parses_typed_positions() {
        let p = parse_pose("1 2 -3 90").unwrap();
        assert_eq!((p.x, p.y, p.z), (1.0, 2.0, -3.0));
        assert!((p.yaw - std::f32::consts::FRAC_PI_2).abs() < 1e-6);
        assert_eq!(parse_pose("1 2 3").unwrap().yaw, 0.0);
        assert!(parse_pose("1 2").is_err());
        assert!(parse_pose("a b c").is_err());
        assert!(parse_pose("1 2 inf 0").is_err());
    }

    #[test]
    fn converts_mumble_coordinates() {
        // Facing forward in Mumble (+z) is facing -z here, yaw 0.
        let (_, p) = decode(&block(1, [1.0, 2.0, 3.0], [0.0, 0.0, 1.0])).unwrap();
        assert_eq!((p.x, p.y, p.z), (1.0, 2.0, -3.0));
        assert!(p.yaw.abs() < 1e-6);
        // Facing left (-x) is a quarter turn left.
        let (_, p) = decode(&block(1, [0.0; 3], [-1.0, 0.0, 0.0])).unwrap();
        assert!((p.yaw - std::f32::consts::FRAC_PI_2).abs() < 1e-6);
        assert!(decode(&[0; 8]).is_none(), "version 0: nobody is writing");
        assert!(decode(&[1, 0, 0]).is_none(), "truncated");
    }

    #[test]
    fn link_goes_stale_when_the_game_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("MumbleLink.0");
        let mut link = MumbleLink::at(path.clone());
        let t0 = Instant::now();
        assert_eq!(link.poll(t0), None, "no file: no game");
        std::fs::write(&path, block(1, [5.0, 0.0, 0.0], [0.0, 0.0, 1.0])).unwrap();
        assert_eq!(link.poll(t0).map(|p| p.x), Some(5.0));
        assert!(link.poll(t0 + Duration::from_millis(500)).is_some());
        assert_eq!(link.poll(t0 + Duration::from_secs(2)), None, "tick unchanged for 2 s");
        std::fs::write(&path, block(2, [6.0, 0.0, 0.0], [0.0, 0.0, 1.0])).unwrap();
        assert_eq!(link.poll(t0 + Duration::from_secs(3)).map(|p| p.x), Some(6.0));
    }
}
