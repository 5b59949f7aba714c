//! Fixed-size little-endian layouts, each declared once.
//!
//! A layout that crosses the boundary is written as one [`wire_layout!`](crate::wire_layout)
//! invocation: its fields with their byte offsets. From that one list the
//! macro yields the struct, the compile-time checks that the fields are in
//! order, do not overlap and fit the stated size (and, for a layout the other
//! side reads in place, that the Rust struct has exactly that layout), and the
//! encoder and decoder. Bytes not covered by a field are reserved: they are
//! encoded as zero, and a `strict` layout's decoder refuses them when they are
//! not.
//!
//! Every access is in range by construction: a field's range is checked
//! against the layout's size at compile time, and the codec works on arrays of
//! exactly that size. Nothing is silently dropped or zero-filled.

/// A value with a fixed little-endian encoding of [`Field::SIZE`] bytes.
///
/// `put` and `get` are given exactly `SIZE` bytes (the layouts' compile-time
/// checks guarantee it).
pub trait Field: Sized {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Writes the value into `out` (`SIZE` bytes).
    fn put(&self, out: &mut [u8]);
    /// Reads a value from `bytes` (`SIZE` bytes).
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! int_field {
    ($($ty:ty),*) => {$(
        impl Field for $ty {
            const SIZE: usize = core::mem::size_of::<$ty>();
            fn put(&self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                let mut raw = [0u8; core::mem::size_of::<$ty>()];
                raw.copy_from_slice(bytes);
                <$ty>::from_le_bytes(raw)
            }
        }
    )*};
}
int_field!(u8, u16, u32, u64);

impl<T: Field, const N: usize> Field for [T; N] {
    const SIZE: usize = T::SIZE * N;
    fn put(&self, out: &mut [u8]) {
        for (v, chunk) in self.iter().zip(out.chunks_exact_mut(T::SIZE)) {
            v.put(chunk);
        }
    }
    fn get(bytes: &[u8]) -> Self {
        core::array::from_fn(|i| T::get(&bytes[i * T::SIZE..(i + 1) * T::SIZE]))
    }
}

/// True if the `(offset, size)` ranges are sorted, disjoint and end by
/// `size` (evaluated at compile time by [`wire_layout!`](crate::wire_layout)).
pub const fn fields_fit(fields: &[(usize, usize)], size: usize) -> bool {
    let mut end = 0;
    let mut i = 0;
    while i < fields.len() {
        let (off, len) = fields[i];
        if off < end {
            return false;
        }
        end = off + len;
        i += 1;
    }
    end <= size
}

/// True if every byte of `bytes` outside the `(offset, size)` ranges is zero.
pub fn reserved_clear(bytes: &[u8], fields: &[(usize, usize)]) -> bool {
    let mut at = 0;
    for &(off, len) in fields {
        if bytes[at..off].iter().any(|b| *b != 0) {
            return false;
        }
        at = off + len;
    }
    bytes[at..].iter().all(|b| *b == 0)
}

/// Declares a fixed-size layout: the struct, its checks and its codec.
///
/// ```
/// weft_control::wire_layout! {
///     /// An example (PROTOCOL.md §0).
///     #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
///     pub struct Pair: 16, strict {
///         /// The first word.
///         [0] pub a: u32,
///         // bytes 4..8 are reserved: encoded as zero, refused if not
///         /// The second.
///         [8] pub b: u64,
///     }
/// }
/// let p = Pair { a: 1, b: 2 };
/// let bytes = p.encode();
/// assert_eq!(&bytes[8..9], &[2]);
/// assert_eq!(Pair::decode(&bytes), Some(p));
/// ```
///
/// Each field is `[OFFSET] NAME: TYPE`, in offset order. After the size,
/// `in_place` makes the struct `#[repr(C)]` and asserts that
/// its Rust layout equals the wire layout (for blocks the other side reads
/// where they lie), and `strict` makes `decode` return `None` when a reserved
/// byte is not zero (otherwise `decode` returns the value and ignores them).
/// Field types implement [`Field`]: unsigned integers, arrays of fields, and
/// other layouts.
///
/// Any other flag is refused at compile time:
///
/// ```compile_fail
/// weft_control::wire_layout! {
///     struct Typo: 4, stirct { [0] a: u32 }
/// }
/// ```
#[macro_export]
macro_rules! wire_layout {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident : $size:literal $(, $flag:ident)* {
            $( $(#[$fmeta:meta])* [$off:expr] $fvis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $( $crate::wire_layout!(@flag $flag); )*
        $crate::wire_layout!(@struct [$($flag)*] $(#[$meta])* $vis struct $name {
            $( $(#[$fmeta])* $fvis $field : $ty ),*
        });

        impl $name {
            /// Encoded size in bytes.
            pub const SIZE: usize = $size;
            /// Each field's `(offset, size)`, in order.
            const FIELDS: &'static [(usize, usize)] =
                &[$( ($off, <$ty as $crate::wire::Field>::SIZE) ),*];

            /// The layout's bytes (reserved bytes zero).
            pub fn encode(&self) -> [u8; $size] {
                let mut out = [0u8; $size];
                <Self as $crate::wire::Field>::put(self, &mut out);
                out
            }

            $crate::wire_layout!(@decode [$($flag)*] $size);
        }

        const _: () = assert!(
            $crate::wire::fields_fit($name::FIELDS, $size),
            concat!(stringify!($name), ": fields out of order, overlapping or past its size"),
        );
        $crate::wire_layout!(@in_place [$($flag)*] $name, $size, $($field = $off),*);

        impl $crate::wire::Field for $name {
            const SIZE: usize = $size;
            fn put(&self, out: &mut [u8]) {
                $( <$ty as $crate::wire::Field>::put(
                    &self.$field,
                    &mut out[$off..$off + <$ty as $crate::wire::Field>::SIZE],
                ); )*
            }
            fn get(bytes: &[u8]) -> Self {
                Self {
                    $( $field: <$ty as $crate::wire::Field>::get(
                        &bytes[$off..$off + <$ty as $crate::wire::Field>::SIZE],
                    ), )*
                }
            }
        }
    };

    (@flag in_place) => {};
    (@flag strict) => {};
    (@flag $other:ident) => {
        compile_error!(concat!("wire_layout!: unknown flag `", stringify!($other), "` (in_place, strict)"));
    };

    (@struct [in_place $($rest:ident)*] $(#[$meta:meta])* $vis:vis struct $name:ident { $($body:tt)* }) => {
        #[repr(C)]
        $(#[$meta])* $vis struct $name { $($body)* }
    };
    (@struct [$first:ident $($rest:ident)*] $($tail:tt)*) => {
        $crate::wire_layout!(@struct [$($rest)*] $($tail)*);
    };
    (@struct [] $(#[$meta:meta])* $vis:vis struct $name:ident { $($body:tt)* }) => {
        $(#[$meta])* $vis struct $name { $($body)* }
    };

    (@decode [strict $($rest:ident)*] $size:literal) => {
        /// Decodes the layout; `None` if a reserved byte is not zero.
        pub fn decode(bytes: &[u8; $size]) -> Option<Self> {
            $crate::wire::reserved_clear(bytes, Self::FIELDS)
                .then(|| <Self as $crate::wire::Field>::get(bytes))
        }
    };
    (@decode [$first:ident $($rest:ident)*] $size:literal) => {
        $crate::wire_layout!(@decode [$($rest)*] $size);
    };
    (@decode [] $size:literal) => {
        /// Decodes the layout (reserved bytes are ignored).
        pub fn decode(bytes: &[u8; $size]) -> Self {
            <Self as $crate::wire::Field>::get(bytes)
        }
    };

    (@in_place [in_place $($rest:ident)*] $name:ident, $size:literal, $($field:ident = $off:expr),*) => {
        $crate::assert_layout!($name, size = $size $(, $field = $off)*);
    };
    (@in_place [$first:ident $($rest:ident)*] $($tail:tt)*) => {
        $crate::wire_layout!(@in_place [$($rest)*] $($tail)*);
    };
    (@in_place [] $($tail:tt)*) => {};
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::wire_layout! {
        /// Test layout with a reserved gap and a nested array.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        struct Inner: 8, in_place {
            [0] a: u32,
            [4] b: u16,
            [6] c: u16,
        }
    }

    crate::wire_layout! {
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        struct Outer: 32, strict {
            [0] x: u8,
            [8] inner: [Inner; 2],
            [24] y: u64,
        }
    }

    #[test]
    fn fields_round_trip_at_their_offsets() {
        let v = Outer {
            x: 7,
            inner: [
                Inner { a: 1, b: 2, c: 3 },
                Inner {
                    a: 0x0102_0304,
                    b: 5,
                    c: 6,
                },
            ],
            y: u64::MAX - 1,
        };
        let b = v.encode();
        assert_eq!(b[0], 7);
        assert_eq!(&b[1..8], &[0; 7]);
        assert_eq!(&b[16..20], &[4, 3, 2, 1]);
        assert_eq!(b[22], 6);
        assert_eq!(Outer::decode(&b), Some(v));
        assert_eq!((Inner::SIZE, Outer::SIZE), (8, 32));
        let inner = Inner::decode(&b[8..16].try_into().unwrap());
        assert_eq!(inner.encode(), v.inner[0].encode());
    }

    #[test]
    fn strict_layouts_refuse_reserved_bytes() {
        let mut b = Outer::default().encode();
        b[3] = 1;
        assert_eq!(Outer::decode(&b), None);
    }

    #[test]
    fn overlapping_or_oversized_fields_do_not_fit() {
        assert!(fields_fit(&[(0, 4), (4, 4)], 8));
        assert!(!fields_fit(&[(0, 4), (3, 4)], 8));
        assert!(!fields_fit(&[(4, 4), (0, 4)], 8));
        assert!(!fields_fit(&[(0, 4), (6, 4)], 8));
    }
}
