//! The party's paths, through engines in memory: admission (expired, revoked, used up, banned,
//! full), kick, ban, a returning owner, chat order with concurrent senders, and gap repair.

#![cfg(test)]

use std::time::Duration;

use partyline_protocol::wire::{MAX_MEMBERS, Rejection};
use partyline_protocol::{InviteError, InviteTerms};

use super::Sim;
use crate::events::NodeEvent;

const ALICE: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;

fn terms(lifetime: Duration, max_uses: Option<u32>) -> InviteTerms {
    InviteTerms { lifetime, max_uses: max_uses.and_then(std::num::NonZeroU32::new) }
}

fn day() -> InviteTerms {
    terms(Duration::from_secs(24 * 3600), None)
}

/// Alice hosts with a day's link; bob and carol join with it.
fn party_of_three() -> (Sim, partyline_protocol::JoinLink) {
    let mut sim = Sim::new(&["alice", "bob", "carol"]);
    let link = sim.host(ALICE, day());
    sim.join(BOB, &link).unwrap();
    sim.join(CAROL, &link).unwrap();
    (sim, link)
}

fn kicked(sim: &Sim, i: usize) -> Option<bool> {
    sim.nodes[i].events.iter().find_map(|e| match e {
        NodeEvent::Kicked { banned } => Some(*banned),
        _ => None,
    })
}

#[test]
fn members_join_and_every_roster_agrees() {
    let (mut sim, _) = party_of_three();
    for i in [ALICE, BOB, CAROL] {
        assert_eq!(sim.roster(i), ["alice", "bob", "carol"], "as {} sees it", sim.nodes[i].name);
    }
    assert!(sim.nodes[CAROL].events.iter().any(|e| matches!(e, NodeEvent::Joined { .. })));
}

#[test]
fn an_expired_invite_is_refused_by_the_owner_whatever_the_joiners_clock_says() {
    let mut sim = Sim::new(&["alice", "bob", "carol"]);
    let link = sim.host(ALICE, terms(Duration::from_secs(3600), None));
    sim.advance(Duration::from_secs(2 * 3600));
    // Carol's own clock says the link has expired: she does not even ask.
    assert!(sim.join(CAROL, &link).unwrap_err().to_string().contains("expired"));
    // Bob's clock is three hours behind: he asks, and the owner says no.
    sim.skew(BOB, -3 * 3600 * 1000);
    sim.join(BOB, &link).unwrap();
    assert!(
        matches!(sim.nodes[BOB].rejections[..], [Rejection::Invite(InviteError::Expired { .. })]),
        "{:?}",
        sim.nodes[BOB].rejections
    );
    assert_eq!(sim.roster(ALICE), ["alice"]);
}

#[test]
fn a_revoked_invite_admits_no_one_new() {
    let mut sim = Sim::new(&["alice", "bob"]);
    let link = sim.host(ALICE, day());
    sim.engine(ALICE).revoke(crate::party::RevokeTarget::All).unwrap();
    sim.join(BOB, &link).unwrap();
    assert!(matches!(sim.nodes[BOB].rejections[..], [Rejection::Invite(InviteError::Revoked)]));
}

#[test]
fn a_link_for_one_admits_one_and_lets_that_one_back() {
    let mut sim = Sim::new(&["alice", "bob", "carol"]);
    let link = sim.host(ALICE, terms(Duration::from_secs(3600), Some(1)));
    sim.join(BOB, &link).unwrap();
    sim.join(CAROL, &link).unwrap();
    assert!(matches!(sim.nodes[CAROL].rejections[..], [Rejection::Invite(InviteError::UsedUp { max: 1 })]));
    // Bob restarts and comes back with the same link: his own use.
    sim.stop(BOB);
    sim.start(BOB);
    sim.join(BOB, &link).unwrap();
    assert!(sim.nodes[BOB].rejections.is_empty());
    assert_eq!(sim.roster(ALICE), ["alice", "bob"]);
}

#[test]
fn a_full_party_refuses_one_more() {
    let names: Vec<String> = (0..=MAX_MEMBERS).map(|i| format!("p{i}")).collect();
    let mut sim = Sim::new(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let link = sim.host(0, day());
    for i in 1..MAX_MEMBERS {
        sim.join(i, &link).unwrap();
    }
    assert_eq!(sim.roster(0).len(), MAX_MEMBERS);
    sim.join(MAX_MEMBERS, &link).unwrap();
    assert!(
        matches!(sim.nodes[MAX_MEMBERS].rejections[..], [Rejection::PartyFull { max }] if max as usize == MAX_MEMBERS)
    );
    assert_eq!(sim.roster(1).len(), MAX_MEMBERS, "members see the same full party");
}

#[test]
fn a_kicked_member_needs_a_new_link() {
    let (mut sim, link) = party_of_three();
    sim.engine(ALICE).kick("bob", false).unwrap();
    sim.run();
    assert_eq!(kicked(&sim, BOB), Some(false));
    assert_eq!(sim.roster(CAROL), ["alice", "carol"]);
    sim.join(BOB, &link).unwrap();
    assert!(matches!(sim.nodes[BOB].rejections[..], [Rejection::Kicked]));
    let fresh = sim.engine(ALICE).invite(day()).unwrap();
    sim.join(BOB, &fresh).unwrap();
    assert_eq!(sim.roster(CAROL), ["alice", "carol", "bob"]);
}

#[test]
fn a_ban_holds_against_the_peer_and_closes_its_link_to_fresh_identities() {
    let mut sim = Sim::new(&["alice", "bob", "carol", "eve"]);
    let link = sim.host(ALICE, day());
    let bobs = sim.engine(ALICE).invite(day()).unwrap();
    sim.join(BOB, &bobs).unwrap();
    sim.join(CAROL, &link).unwrap();
    sim.engine(ALICE).kick("bob", true).unwrap();
    sim.run();
    assert_eq!(kicked(&sim, BOB), Some(true));
    let fresh = sim.engine(ALICE).invite(day()).unwrap();
    sim.join(BOB, &fresh).unwrap();
    assert!(matches!(sim.nodes[BOB].rejections[..], [Rejection::Banned]), "a new link does not help");
    sim.join(3, &bobs).unwrap();
    assert!(
        matches!(sim.nodes[3].rejections[..], [Rejection::Invite(InviteError::Revoked)]),
        "eve with bob's link"
    );
    assert_eq!(sim.roster(CAROL), ["alice", "carol"]);
}

#[test]
fn members_wait_for_their_owner_and_the_party_goes_on_when_it_is_back() {
    let (mut sim, _) = party_of_three();
    let party = sim.engine(ALICE).party();
    sim.stop(ALICE);
    sim.advance(Duration::from_secs(30));
    assert_eq!(sim.engine(BOB).party(), party, "bob waits in the party");
    sim.start(ALICE);
    sim.engine(ALICE).host(false).unwrap();
    sim.advance(Duration::from_secs(6));
    assert_eq!(sim.engine(ALICE).party(), party, "the same party");
    assert_eq!(sim.roster(ALICE), ["alice", "bob", "carol"], "both came back");
    sim.engine(BOB).chat("back?".into()).unwrap();
    sim.run();
    assert_eq!(
        sim.chat(CAROL).last().map(|(_, from, text)| (from.as_str(), text.as_str())),
        Some(("bob", "back?"))
    );
}

#[test]
fn chat_from_concurrent_senders_has_one_order_for_everyone() {
    let (mut sim, _) = party_of_three();
    for round in 0..5 {
        for i in [CAROL, ALICE, BOB] {
            let text = format!("{} {round}", sim.nodes[i].name);
            sim.engine(i).chat(text).unwrap();
        }
    }
    sim.run();
    let alices = sim.chat(ALICE);
    assert_eq!(alices.len(), 15);
    assert!(alices.windows(2).all(|w| w[0].0 < w[1].0), "numbered in order: {alices:?}");
    assert_eq!(sim.chat(BOB), alices);
    assert_eq!(sim.chat(CAROL), alices);
}

#[test]
fn a_member_that_missed_messages_fills_the_gap() {
    let (mut sim, _) = party_of_three();
    let bob = sim.nodes[BOB].peer;
    sim.deaf.insert(bob);
    for text in ["one", "two", "three"] {
        sim.engine(CAROL).chat(text.into()).unwrap();
    }
    sim.run();
    sim.deaf.remove(&bob);
    assert!(sim.chat(BOB).is_empty(), "bob heard nothing");
    sim.engine(CAROL).chat("four".into()).unwrap();
    sim.run();
    let texts: Vec<String> = sim.chat(BOB).into_iter().map(|(_, _, text)| text).collect();
    assert_eq!(texts, ["one", "two", "three", "four"], "the gap was asked for and filled, in order");
    assert_eq!(sim.chat(BOB), sim.chat(CAROL));
}
