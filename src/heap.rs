//! Handing the heap's free memory back to the operating system.
//!
//! glibc's allocator keeps memory the program freed in its arenas for reuse and returns it on
//! its own only from the top of each heap. After a burst of small allocations that are later
//! freed (cache entries of a request flood), the free memory lies between live allocations and
//! RSS stays at the burst's high-water mark; `malloc_trim` releases the free pages of every
//! arena, wherever they are. Other C libraries and platforms: nothing to do here.

/// Returns the free pages of the heap to the operating system (glibc), or does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() {
    // SAFETY: `malloc_trim` takes a plain integer (the bytes to leave untrimmed at the top of
    // the main heap) and no pointer, so no Rust value can be affected by its arguments. It
    // works on the allocator's own state under each arena's lock (glibc documents it MT-Safe),
    // so calling it while other threads allocate and free is sound. It only releases pages no
    // allocation occupies (madvise(MADV_DONTNEED) on free chunks, shrinking heap tops), so
    // every live allocation, including those Rust's global allocator made through malloc,
    // stays valid.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Returns the free pages of the heap to the operating system (glibc), or does nothing.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimming while other threads allocate and free leaves their data intact.
    #[test]
    fn trimming_under_concurrent_allocation_keeps_live_data() {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut kept = Vec::new();
                    for i in 0..20_000u32 {
                        let v = vec![(t as u8) ^ (i as u8); 64 + (i % 512) as usize];
                        if i % 3 == 0 {
                            kept.push(v);
                        }
                    }
                    kept
                })
            })
            .collect();
        for _ in 0..50 {
            release_free_memory();
        }
        for (t, w) in workers.into_iter().enumerate() {
            let kept = w.join().expect("worker");
            for (n, v) in kept.iter().enumerate() {
                let i = (n * 3) as u32;
                assert!(v.iter().all(|&b| b == (t as u8) ^ (i as u8)));
            }
        }
    }
}
