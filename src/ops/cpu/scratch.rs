//! Reusable scratch buffers for intermediate matrices (Winograd tiles,
//! im2col columns). Fresh multi-megabyte allocations cost page faults on
//! every call; these stay mapped and are handed out again.

use std::cell::RefCell;

thread_local! {
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` values with unspecified contents, returned to the pool on drop.
pub struct Scratch(Vec<f32>);

impl Scratch {
    pub fn take(len: usize) -> Self {
        let mut buf = POOL.with(|p| {
            let mut pool = p.borrow_mut();
            // the smallest pooled buffer that is large enough, else the largest (to grow)
            let pick = pool
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i)
                .or_else(|| (0..pool.len()).max_by_key(|&i| pool[i].capacity()));
            pick.map(|i| pool.swap_remove(i)).unwrap_or_default()
        });
        buf.resize(len, 0.0);
        Self(buf)
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        POOL.with(|p| {
            let mut pool = p.borrow_mut();
            // Keep a few: enough for the buffers one op holds at once.
            if pool.len() < 4 {
                pool.push(buf);
            }
        });
    }
}
