//! Reusable scratch buffers for intermediate matrices (Winograd tiles,
//! im2col columns). Fresh multi-megabyte allocations cost page faults on
//! every call; these stay mapped and are handed out again.

use std::cell::RefCell;

thread_local! {
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` values with unspecified contents, returned to the pool
/// on drop. Its first value sits on a 64-byte boundary: AVX-512 stores of
/// whole vectors at multiples of sixteen values (Winograd's tiles) then
/// never straddle two cache lines.
pub struct Scratch {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

/// Values in a cache line.
const LINE: usize = 64 / std::mem::size_of::<f32>();

impl Scratch {
    pub fn take(len: usize) -> Self {
        let mut buf = POOL.with(|p| {
            let mut pool = p.borrow_mut();
            // the smallest pooled buffer that is large enough, else the largest (to grow)
            let pick = pool
                .iter()
                .enumerate()
                .filter(|(_, b)| b.len() >= len + LINE)
                .min_by_key(|(_, b)| b.len())
                .map(|(i, _)| i)
                .or_else(|| (0..pool.len()).max_by_key(|&i| pool[i].len()));
            pick.map(|i| pool.swap_remove(i)).unwrap_or_default()
        });
        // Pooled buffers keep their whole length: only growth is written
        // (zeros), not the part a smaller request left (resizing a buffer
        // down and up again had zeroed it on every reuse).
        if buf.len() < len + LINE {
            buf.resize(len + LINE, 0.0);
        }
        let start = buf.as_ptr().align_offset(64).min(LINE);
        Self { buf, start, len }
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        POOL.with(|p| {
            let mut pool = p.borrow_mut();
            // Keep a few: enough for the buffers one op holds at once.
            if pool.len() < 4 {
                pool.push(buf);
            }
        });
    }
}
