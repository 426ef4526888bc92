//! Fleet-wide pins over `object_store`'s in-memory store (create-only and compare-and-swap as
//! S3 does them), with repositories built and signed by `trust::testkit`: two replicas are two
//! [`FleetTrust`] handles over one bucket, each with its own (local) pins.

use std::time::Duration;

use object_store::memory::InMemory;
use time::macros::datetime;

use super::*;
use crate::trust::testkit::{TestKey, TestRepo, NOW};
use crate::trust::{TrustErrorKind, VerifyOptions};

const GUN: &str = "registry.test/team/app";

fn fleet_over(mem: &Arc<InMemory>) -> FleetTrust {
    FleetTrust::new(SharedStore::in_memory_for_tests(
        mem,
        Duration::from_secs(30),
        Duration::from_secs(1),
    ))
}

/// A verification against `repo`'s files, as `trust::update` runs it against a Notary server.
fn verifier(repo: &TestRepo) -> VerifyFn<'static> {
    let source = repo.build();
    Box::new(move |pins: Option<TrustState>| {
        let source = source.clone();
        Box::pin(async move {
            crate::trust::update::update(
                &source,
                GUN,
                "notary.test",
                pins.as_ref(),
                NOW,
                &VerifyOptions::default(),
            )
            .await
        })
    })
}

/// The same repository signed under another root key (what a lying or re-created Notary
/// server hands out).
fn other_root(repo: &TestRepo) -> TestRepo {
    let mut r = repo.clone();
    r.root.keys = vec![TestKey::root_cert(
        9,
        GUN,
        datetime!(2020-01-01 0:00 UTC),
        datetime!(2120-01-01 0:00 UTC),
    )];
    r
}

#[tokio::test]
async fn first_contact_race_ends_with_one_pin_fleet_wide() {
    let mem = Arc::new(InMemory::new());
    let (a, b) = (fleet_over(&mem), fleet_over(&mem));
    let repo_a = TestRepo::new(GUN);
    let repo_b = other_root(&repo_a);
    let (ra, rb) = tokio::join!(
        a.verify_shared(GUN, None, verifier(&repo_a)),
        b.verify_shared(GUN, None, verifier(&repo_b)),
    );
    assert!(
        ra.is_ok() != rb.is_ok(),
        "exactly one replica's root becomes the pin: {:?} / {:?}",
        ra.as_ref().map(|_| ()),
        rb.as_ref().map(|_| ())
    );
    let (winner, loser) = if ra.is_ok() { (ra, rb) } else { (rb, ra) };
    let pinned = a.load(GUN).await.unwrap().unwrap().0.unwrap();
    assert_eq!(pinned.root, winner.unwrap().new_state.root);
    let e = loser.err().unwrap();
    assert!(
        matches!(
            e.kind(),
            TrustErrorKind::RootMismatch | TrustErrorKind::BadSignature
        ),
        "the loser re-verified against the fleet's root and refused: {e}"
    );
}

#[tokio::test]
async fn replicas_offered_the_same_root_converge() {
    let mem = Arc::new(InMemory::new());
    let (a, b) = (fleet_over(&mem), fleet_over(&mem));
    let repo = TestRepo::new(GUN);
    let (ra, rb) = tokio::join!(
        a.verify_shared(GUN, None, verifier(&repo)),
        b.verify_shared(GUN, None, verifier(&repo)),
    );
    assert_eq!(ra.unwrap().new_state.root, rb.unwrap().new_state.root);
}

#[tokio::test]
async fn rollback_seen_by_one_replica_is_refused_by_every_other() {
    let mem = Arc::new(InMemory::new());
    let (a, b) = (fleet_over(&mem), fleet_over(&mem));
    let mut newer = TestRepo::new(GUN);
    newer.timestamp.version = 10;
    newer.snapshot.version = 10;
    let mut older = newer.clone();
    older.timestamp.version = 9;
    older.snapshot.version = 9;
    let seen = a.verify_shared(GUN, None, verifier(&newer)).await.unwrap();
    assert_eq!(seen.new_state.versions["timestamp"], 10);
    // B has never seen this repository itself: the fleet's floor refuses version 9.
    let Err(e) = b.verify_shared(GUN, None, verifier(&older)).await else {
        panic!("rollback accepted");
    };
    assert_eq!(e.kind(), TrustErrorKind::Rollback, "{e}");
    // And B's own (older) pins cannot pull the fleet's floor down.
    let local_old = crate::trust::testkit::verify(&older.build(), GUN, None)
        .unwrap()
        .new_state;
    assert!(b
        .verify_shared(GUN, Some(&local_old), verifier(&older))
        .await
        .is_err());
}

#[tokio::test]
async fn reset_forgets_the_fleet_pin() {
    let mem = Arc::new(InMemory::new());
    let (a, b) = (fleet_over(&mem), fleet_over(&mem));
    let repo = TestRepo::new(GUN);
    a.verify_shared(GUN, None, verifier(&repo)).await.unwrap();
    assert!(b
        .verify_shared(GUN, None, verifier(&other_root(&repo)))
        .await
        .is_err());
    assert!(a.reset(GUN).await.unwrap());
    assert!(a.load(GUN).await.unwrap().is_none());
    // After the reset the next first contact pins afresh, for the whole fleet.
    b.verify_shared(GUN, None, verifier(&other_root(&repo)))
        .await
        .unwrap();
    assert!(a.verify_shared(GUN, None, verifier(&repo)).await.is_err());
}

#[test]
fn merge_raises_floors_only_under_the_same_root() {
    let repo = TestRepo::new(GUN);
    let mut f = crate::trust::testkit::verify(&repo.build(), GUN, None)
        .unwrap()
        .new_state;
    let mut l = f.clone();
    l.versions.insert("timestamp".into(), 7);
    f.versions.insert("timestamp".into(), 3);
    assert_eq!(merge(Some(&l), Some(&f)).unwrap().versions["timestamp"], 7);
    l.root = crate::trust::StoredBytes(b"another root".to_vec());
    assert_eq!(merge(Some(&l), Some(&f)).unwrap().versions["timestamp"], 3);
    assert_eq!(merge(Some(&l), None).unwrap().root, l.root);
}
