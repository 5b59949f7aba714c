//! Tests of the process pool: examples, and random sequences of spawns,
//! growth, ends and launders checked against a model of who owns each
//! frame and which frames were page tables.

use super::*;
use crate::loader::Space;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use weft_image::paging::PageFlags;

const P: u64 = PAGE_SIZE;
/// Where the test pools start (guest RAM is 4 MiB).
const BASE: u64 = 1 << 20;

fn ram() -> Ram {
    crate::guest_memory::create(4 << 20).unwrap()
}

#[test]
fn runs_are_taken_first_fit_and_merged_when_given_back() {
    let mut pool = Pool::new(P, 11 * P);
    let mut owned = Owned::default();
    let mut g = Grant {
        pool: &mut pool,
        owned: &mut owned,
    };
    assert_eq!(g.alloc(3, 0, "a").unwrap(), P);
    assert_eq!(g.alloc(1, 0, "b").unwrap(), 4 * P);
    assert_eq!(g.alloc(6, 0, "c").unwrap(), 5 * P);
    assert!(g.alloc(1, 0, "d").is_err());
    assert_eq!(owned.runs, vec![(P, 10)]);
    assert_eq!(owned.bytes(), 10 * P);
    pool.give((5 * P, 6));
    pool.give((P, 3));
    pool.give((4 * P, 1));
    assert_eq!(pool.free, vec![(P, 10)]);
}

#[test]
fn tables_come_from_the_top_and_data_from_the_bottom_in_parts() {
    let mut pool = Pool::new(P, 11 * P);
    let mut owned = Owned::default();
    let mut g = Grant {
        pool: &mut pool,
        owned: &mut owned,
    };
    assert_eq!(g.alloc_zeroed(), Some(10 * P));
    assert_eq!(g.alloc(2, 0, "a").unwrap(), P);
    assert_eq!(g.alloc_part(20, 0, "b").unwrap(), (3 * P, 7));
    assert!(g.alloc_part(1, 0, "c").is_err());
    assert_eq!(g.alloc_zeroed(), None);
}

#[test]
fn a_freed_table_is_handed_out_again_only_after_a_launder() {
    let ram = ram();
    let mut pool = Pool::new(BASE, BASE + 4 * P);
    let mut owned = Owned::default();
    let mut g = Grant {
        pool: &mut pool,
        owned: &mut owned,
    };
    let data = g.alloc(2, 0, "data").unwrap();
    let table = g.alloc_zeroed().unwrap();
    ram.write_obj(0xABCDu64, GuestAddress(data + 8)).unwrap();
    ram.write_obj(0x1234u64, GuestAddress(table)).unwrap();
    assert_eq!(owned.bytes(), 3 * P);
    owned.release(&ram, &mut pool);
    assert_eq!(ram.read_obj::<u64>(GuestAddress(data + 8)).unwrap(), 0);
    assert_eq!(ram.read_obj::<u64>(GuestAddress(table)).unwrap(), 0);
    assert_eq!(owned.bytes(), 0);
    // Three clean frames, the table's out of use: four pages do not fit.
    assert_eq!(pool.clean_pages(), 3);
    assert!(pool.launderable());
    let mut g = Grant {
        pool: &mut pool,
        owned: &mut owned,
    };
    assert!(g.alloc_part(4, 0, "data").is_ok());
    assert!(g.alloc_part(1, 0, "data").is_err());
    assert_eq!(g.alloc_zeroed(), None);
    owned.release(&ram, &mut pool);
    pool.launder();
    assert!(!pool.launderable());
    assert_eq!(pool.free, vec![(BASE, 4)]);
    assert!(pool.tainted.is_empty());
}

#[test]
fn a_table_in_use_stays_tainted_through_a_launder() {
    let ram = ram();
    let mut pool = Pool::new(BASE, BASE + 4 * P);
    let (mut live, mut gone) = (Owned::default(), Owned::default());
    let table = Grant {
        pool: &mut pool,
        owned: &mut live,
    }
    .alloc_zeroed()
    .unwrap();
    Grant {
        pool: &mut pool,
        owned: &mut gone,
    }
    .alloc_zeroed()
    .unwrap();
    gone.release(&ram, &mut pool);
    pool.launder();
    assert_eq!(pool.clean_pages(), 3);
    live.release(&ram, &mut pool);
    assert_eq!(pool.tainted_free, vec![table]);
}

/// A request shaped like a spawn's: page tables, a single page filled
/// through its address (contiguous), and scattered pages (stack, heap).
#[derive(Clone, Debug)]
struct Shape {
    tables: u64,
    single: u64,
    scattered: u64,
}

impl Shape {
    fn frames(&self) -> u64 {
        self.tables + self.single + self.scattered
    }
}

#[derive(Clone, Debug)]
enum Op {
    Spawn(Shape),
    /// Grow live process `n % live` by a shape.
    Grow(usize, Shape),
    /// End live process `n % live`.
    End(usize),
    Launder,
}

fn shape() -> impl Strategy<Value = Shape> {
    (0..6u64, 1..=3u64, 0..40u64).prop_map(|(tables, single, scattered)| Shape {
        tables,
        single,
        scattered,
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => shape().prop_map(Op::Spawn),
        2 => (any::<usize>(), shape()).prop_map(|(n, s)| Op::Grow(n, s)),
        3 => any::<usize>().prop_map(Op::End),
        1 => Just(Op::Launder),
    ]
}

/// What the pool must agree with.
struct Model {
    pages: u64,
    /// Owner of every frame handed out.
    owner: BTreeMap<u64, usize>,
    /// Frames handed out as tables and not free at a launder since.
    tainted: BTreeSet<u64>,
    next_owner: usize,
}

impl Model {
    /// Records a frame the pool handed out: it must be free, clean of
    /// table use since the last launder, and zero.
    fn hand_out(&mut self, ram: &Ram, f: u64, who: usize, table: bool) {
        assert!(
            (BASE..BASE + self.pages * P).contains(&f),
            "{f:#x} out of the pool"
        );
        assert!(f.is_multiple_of(P));
        assert_eq!(self.owner.insert(f, who), None, "{f:#x} owned twice");
        assert!(!self.tainted.contains(&f), "tainted {f:#x} handed out");
        for at in [f, f + P - 8] {
            assert_eq!(ram.read_obj::<u64>(GuestAddress(at)).unwrap(), 0);
            ram.write_obj(!0u64, GuestAddress(at)).unwrap();
        }
        if table {
            self.tainted.insert(f);
        }
    }

    fn launder(&mut self, pool: &mut Pool) {
        pool.launder();
        let owner = &self.owner;
        self.tainted.retain(|f| owner.contains_key(f));
    }

    /// Takes `shape` for `who` into `owned`, as the monitor does: on
    /// running out, it gives back what it took, launders if that helps
    /// and tries once more. Whether it got everything.
    fn take(
        &mut self,
        ram: &Ram,
        pool: &mut Pool,
        owned: &mut Owned,
        who: usize,
        shape: &Shape,
    ) -> bool {
        for attempt in 0..2 {
            let mut part = Owned::default();
            if self.try_take(ram, pool, &mut part, who, shape) {
                owned.extend(part);
                return true;
            }
            for f in part
                .runs
                .iter()
                .flat_map(|&(b, n)| (0..n).map(move |k| b + k * P))
            {
                self.owner.remove(&f);
            }
            part.release(ram, pool);
            if attempt == 1 || !pool.launderable() {
                break;
            }
            self.launder(pool);
        }
        false
    }

    fn try_take(
        &mut self,
        ram: &Ram,
        pool: &mut Pool,
        part: &mut Owned,
        who: usize,
        s: &Shape,
    ) -> bool {
        let mut g = Grant { pool, owned: part };
        for _ in 0..s.tables {
            let Some(f) = g.alloc_zeroed() else {
                return false;
            };
            self.hand_out(ram, f, who, true);
        }
        let Ok(base) = g.alloc(s.single, 0, "single") else {
            return false;
        };
        for k in 0..s.single {
            self.hand_out(ram, base + k * P, who, false);
        }
        let mut left = s.scattered;
        while left > 0 {
            let Ok((base, n)) = g.alloc_part(left, 0, "scattered") else {
                return false;
            };
            assert!((1..=left).contains(&n));
            for k in 0..n {
                self.hand_out(ram, base + k * P, who, false);
            }
            left -= n;
        }
        true
    }

    /// The pool's free frames and the model's owned ones partition the
    /// pool; free frames are zero; the pool's taint is the model's.
    fn check(&self, ram: &Ram, pool: &Pool) {
        let mut seen = BTreeSet::new();
        for w in pool.free.windows(2) {
            assert!(
                w[0].0 + w[0].1 * P < w[1].0,
                "runs unsorted or unmerged: {:?}",
                pool.free
            );
        }
        let free = pool
            .free
            .iter()
            .flat_map(|&(b, n)| (0..n).map(move |k| b + k * P))
            .chain(pool.tainted_free.iter().copied());
        for f in free {
            assert!(seen.insert(f), "{f:#x} free twice");
            assert!(!self.owner.contains_key(&f), "{f:#x} free and owned");
            for at in [f, f + P - 8] {
                assert_eq!(ram.read_obj::<u64>(GuestAddress(at)).unwrap(), 0);
            }
        }
        assert_eq!(seen.len() + self.owner.len(), self.pages as usize);
        assert_eq!(pool.tainted, self.tainted);
    }
}

/// Whether taking `shape` with `free` frames not owned had the outcome
/// it must: spawns go on for ever, failing only when memory is really
/// short. (Several contiguous pages may also fail for want of a hole.)
fn fits(shape: &Shape, free: u64, took: bool) -> bool {
    match (shape.single, took) {
        (1, took) => took == (shape.frames() <= free),
        (_, true) => shape.frames() <= free,
        (_, false) => true,
    }
}

/// Slots, as the kernel has (15 spawned processes at most).
const MAX_LIVE: usize = 15;

proptest! {
    #[test]
    fn the_pool_agrees_with_its_model(pages in 16..160u64, ops in prop::collection::vec(op(), 1..120)) {
        let ram = ram();
        let mut pool = Pool::new(BASE, BASE + pages * P);
        let mut model = Model { pages, owner: BTreeMap::new(), tainted: BTreeSet::new(), next_owner: 0 };
        let mut live: Vec<(usize, Owned)> = Vec::new();
        for op in ops {
            match op {
                Op::Spawn(shape) if live.len() < MAX_LIVE => {
                    let who = model.next_owner;
                    model.next_owner += 1;
                    let mut owned = Owned::default();
                    let free = pages - model.owner.len() as u64;
                    let took = model.take(&ram, &mut pool, &mut owned, who, &shape);
                    prop_assert!(fits(&shape, free, took), "{:?} with {} free", shape, free);
                    if took {
                        live.push((who, owned));
                    }
                }
                Op::Grow(n, shape) if !live.is_empty() => {
                    let count = live.len();
                    let (who, owned) = &mut live[n % count];
                    let free = pages - model.owner.len() as u64;
                    let took = model.take(&ram, &mut pool, owned, *who, &shape);
                    prop_assert!(fits(&shape, free, took), "{:?} with {} free", shape, free);
                }
                Op::End(n) if !live.is_empty() => {
                    let (who, mut owned) = live.swap_remove(n % live.len());
                    prop_assert_eq!(owned.bytes(), model.owner.values().filter(|&&w| w == who).count() as u64 * P);
                    model.owner.retain(|_, w| *w != who);
                    owned.release(&ram, &mut pool);
                }
                Op::Launder => model.launder(&mut pool),
                _ => {}
            }
            model.check(&ram, &pool);
        }
    }

    /// `map_demand` bounds what mapping fresh pages takes, tables included.
    #[test]
    fn mapping_fresh_pages_takes_at_most_their_demand(first in 0..4096u64, pages in 1..3000u64) {
        let ram = crate::guest_memory::create(32 << 20).unwrap();
        let mut pool = Pool::new(BASE, 32 << 20);
        let mut owned = Owned::default();
        let mut grant = Grant { pool: &mut pool, owned: &mut owned };
        let root = grant.alloc_zeroed().unwrap();
        let rw = PageFlags { writable: true, user: true, executable: false, global: false };
        // Anywhere in the anonymous area, straddling every table boundary.
        let vaddr = weft_control::layout::USER_HEAP_BASE + (1 << 39) - first * P;
        Space { ram: &ram, frames: &mut grant, root }
            .map_fresh(vaddr, pages, rw, 0, "test")
            .unwrap();
        prop_assert!(owned.bytes() / P - 1 <= map_demand(pages));
    }
}

#[test]
fn a_small_pool_serves_spawn_shaped_requests_for_ever() {
    let ram = ram();
    let pages = 64;
    let mut pool = Pool::new(BASE, BASE + pages * P);
    let mut model = Model {
        pages,
        owner: BTreeMap::new(),
        tainted: BTreeSet::new(),
        next_owner: 0,
    };
    let shape = Shape {
        tables: 5,
        single: 1,
        scattered: 9,
    };
    let mut live = std::collections::VecDeque::new();
    for who in 0..5_000 {
        if live.len() == 4 {
            let (gone, mut owned): (usize, Owned) = live.pop_front().unwrap();
            model.owner.retain(|_, w| *w != gone);
            owned.release(&ram, &mut pool);
        }
        let mut owned = Owned::default();
        assert!(
            model.take(&ram, &mut pool, &mut owned, who, &shape),
            "spawn {who}"
        );
        live.push_back((who, owned));
    }
    model.check(&ram, &pool);
}
