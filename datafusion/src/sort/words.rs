//! A row's sort keys as `u64` words whose order as unsigned integers is the keys' order, and
//! back: floats by IEEE total order (as Arrow sorts them), descending keys inverted, a null's
//! place a word of its own, a 128-bit decimal one word while its values fit 64 bits.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, DurationMicrosecondType, DurationMillisecondType,
    DurationNanosecondType, DurationSecondType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{make_array, Array, ArrayRef, ArrowPrimitiveType};
use arrow_schema::{DataType, SortOptions, TimeUnit};
use datafusion::arrow::array::ArrayData;
use datafusion::arrow::array::BooleanBufferBuilder;
use datafusion::arrow::buffer::{MutableBuffer, NullBuffer};
use datafusion::common::{exec_err, Result};

use super::Partition;

/// The most words a key of type `ty` takes, nulls apart (`None`: not a key this sort takes).
pub(super) fn most_words(ty: &DataType) -> Option<usize> {
    use DataType::*;
    Some(match ty {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float32 | Float64 => 1,
        Date32 | Date64 | Time32(_) | Time64(_) | Timestamp(_, _) | Duration(_) => 1,
        // One word while every value fits 64 bits, else two.
        Decimal128(_, _) => 2,
        _ => return None,
    })
}

/// One key column's words: how many a row takes, and a writer of row `row`'s words into `to`.
struct KeyColumn {
    /// A word ranking nulls before (0) or after (2) values (1), when the column has nulls.
    nulls: Option<u64>,
    /// Words of the value (1 or 2).
    value_words: usize,
    descending: bool,
    values: Values,
}

/// A key column's values as order-preserving unsigned words.
enum Values {
    /// Signed integers of any width, as i64.
    Signed(Vec<i64>),
    /// Unsigned integers, as u64.
    Unsigned(Vec<u64>),
    /// Floats, as their IEEE total order.
    Float(Vec<u64>),
    /// 128-bit decimals.
    Wide(Vec<i128>),
}

impl KeyColumn {
    fn words(&self) -> usize {
        usize::from(self.nulls.is_some()) + self.value_words
    }

    /// Writes row `row`'s words into `to` (of length [`KeyColumn::words`]).
    #[inline]
    fn write(&self, array: &dyn Array, row: usize, to: &mut [u64]) {
        let mut at = 0;
        if let Some(null_rank) = self.nulls {
            if array.is_null(row) {
                to.fill(0);
                to[0] = null_rank;
                return;
            }
            to[0] = 1;
            at = 1;
        }
        let flip = if self.descending { u64::MAX } else { 0 };
        let sign = 1u64 << 63;
        match &self.values {
            Values::Signed(v) => to[at] = (v[row] as u64 ^ sign) ^ flip,
            Values::Unsigned(v) | Values::Float(v) => to[at] = v[row] ^ flip,
            Values::Wide(v) if self.value_words == 1 => to[at] = (v[row] as i64 as u64 ^ sign) ^ flip,
            Values::Wide(v) => {
                to[at] = ((v[row] >> 64) as u64 ^ sign) ^ flip;
                to[at + 1] = (v[row] as u64) ^ flip;
            }
        }
    }
}

/// A float's bits, ordered as unsigned integers the way `total_cmp` orders the floats.
#[inline]
fn total_order(bits: u64, sign: u64) -> u64 {
    if bits & sign != 0 {
        !bits
    } else {
        bits | sign
    }
}

/// Values of one primitive array as i64.
fn signed<T: ArrowPrimitiveType>(a: &dyn Array) -> Vec<i64>
where
    T::Native: Into<i64>,
{
    a.as_primitive::<T>().values().iter().map(|&v| v.into()).collect()
}

fn unsigned<T: ArrowPrimitiveType>(a: &dyn Array) -> Vec<u64>
where
    T::Native: Into<u64>,
{
    a.as_primitive::<T>().values().iter().map(|&v| v.into()).collect()
}

/// A key's values in one batch, in the words of [`Values`].
fn values_of(a: &dyn Array) -> Result<Values> {
    use DataType::*;
    Ok(match a.data_type() {
        Int8 => Values::Signed(signed::<Int8Type>(a)),
        Int16 => Values::Signed(signed::<Int16Type>(a)),
        Int32 => Values::Signed(signed::<Int32Type>(a)),
        Int64 => Values::Signed(signed::<Int64Type>(a)),
        UInt8 => Values::Unsigned(unsigned::<UInt8Type>(a)),
        UInt16 => Values::Unsigned(unsigned::<UInt16Type>(a)),
        UInt32 => Values::Unsigned(unsigned::<UInt32Type>(a)),
        UInt64 => Values::Unsigned(unsigned::<UInt64Type>(a)),
        Float32 => Values::Float(
            a.as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|v| u64::from(total_order(u64::from(v.to_bits()), 1 << 31) as u32))
                .collect(),
        ),
        Float64 => Values::Float(
            a.as_primitive::<Float64Type>()
                .values()
                .iter()
                .map(|v| total_order(v.to_bits(), 1 << 63))
                .collect(),
        ),
        Date32 => Values::Signed(signed::<Date32Type>(a)),
        Date64 => Values::Signed(signed::<Date64Type>(a)),
        Time32(TimeUnit::Second) => Values::Signed(signed::<Time32SecondType>(a)),
        Time32(_) => Values::Signed(signed::<Time32MillisecondType>(a)),
        Time64(TimeUnit::Microsecond) => Values::Signed(signed::<Time64MicrosecondType>(a)),
        Time64(_) => Values::Signed(signed::<Time64NanosecondType>(a)),
        Timestamp(TimeUnit::Second, _) => Values::Signed(signed::<TimestampSecondType>(a)),
        Timestamp(TimeUnit::Millisecond, _) => Values::Signed(signed::<TimestampMillisecondType>(a)),
        Timestamp(TimeUnit::Microsecond, _) => Values::Signed(signed::<TimestampMicrosecondType>(a)),
        Timestamp(TimeUnit::Nanosecond, _) => Values::Signed(signed::<TimestampNanosecondType>(a)),
        Duration(TimeUnit::Second) => Values::Signed(signed::<DurationSecondType>(a)),
        Duration(TimeUnit::Millisecond) => Values::Signed(signed::<DurationMillisecondType>(a)),
        Duration(TimeUnit::Microsecond) => Values::Signed(signed::<DurationMicrosecondType>(a)),
        Duration(TimeUnit::Nanosecond) => Values::Signed(signed::<DurationNanosecondType>(a)),
        Decimal128(_, _) => Values::Wide(a.as_primitive::<Decimal128Type>().values().to_vec()),
        other => return exec_err!("KeySortExec: a key of type {other}"),
    })
}

/// Words a row's keys take in `columns`.
pub(super) fn key_words(columns: &[KeyLayout]) -> usize {
    columns.iter().map(|(nulls, w, _)| usize::from(*nulls) + w).sum()
}

/// Row words of one partition, `N` a row (the keys', then the place; its batches numbered from
/// `first`), sorted.
pub(super) fn keyed<const N: usize>(
    part: &Partition,
    columns: &[KeyLayout],
    first: usize,
) -> Result<Vec<[u64; N]>> {
    let mut keyed: Vec<[u64; N]> = vec![[0; N]; part.rows()];
    let mut start = 0;
    for (b, batch) in part.batches.iter().enumerate() {
        let n = batch.num_rows();
        let block = &mut keyed[start..start + n];
        let mut at = 0;
        for (k, &(nulls, value_words, options)) in columns.iter().enumerate() {
            let array = part.arrays[k][b].as_ref();
            let column = KeyColumn {
                nulls: nulls.then_some(if options.nulls_first { 0 } else { 2 }),
                value_words,
                descending: options.descending,
                values: values_of(array)?,
            };
            let w = column.words();
            for (row, words) in block.iter_mut().enumerate() {
                column.write(array, row, &mut words[at..at + w]);
            }
            at += w;
        }
        for (row, words) in block.iter_mut().enumerate() {
            words[N - 1] = (((first + b) as u64) << 32) | row as u64;
        }
        start += n;
    }
    keyed.sort_unstable();
    Ok(keyed)
}

/// The words' layout of one key over a whole sort: whether it has a null word, its value
/// words (1, or 2 for a decimal past 64 bits), and its order.
pub(super) type KeyLayout = (bool, usize, SortOptions);

/// A key column decoded back from the sorted rows' words: the sort's output column itself,
/// where the key is an input column (gathering it at random from the input batches cost a
/// sixth of SpatialBench's Q7; decoding reads the words in order).
pub(super) struct Decoder {
    /// The output column it makes.
    pub column: usize,
    data_type: DataType,
    /// Its first word in a row's words.
    at: usize,
    layout: KeyLayout,
    values: MutableBuffer,
    valid: Option<BooleanBufferBuilder>,
    rows: usize,
}

impl Decoder {
    /// A decoder of the key at word `at` with `layout`, making output column `column` of type
    /// `data_type`; `None` for a type whose words are not decoded here (Float32: gathered).
    pub(super) fn new(column: usize, data_type: &DataType, at: usize, layout: KeyLayout) -> Option<Decoder> {
        use DataType::*;
        let takes = matches!(
            data_type,
            Int8 | Int16
                | Int32
                | Int64
                | UInt8
                | UInt16
                | UInt32
                | UInt64
                | Float64
                | Date32
                | Date64
                | Time32(_)
                | Time64(_)
                | Timestamp(_, _)
                | Duration(_)
                | Decimal128(_, _)
        );
        takes.then(|| Decoder {
            column,
            data_type: data_type.clone(),
            at,
            layout,
            values: MutableBuffer::new(0),
            valid: layout.0.then(|| BooleanBufferBuilder::new(0)),
            rows: 0,
        })
    }

    /// Room for `rows` more rows.
    pub(super) fn reserve(&mut self, rows: usize) {
        let width = self.data_type.primitive_width().unwrap_or(8);
        self.values.reserve(rows * width);
        if let Some(v) = &mut self.valid {
            v.reserve(rows);
        }
    }

    /// The next row's value, from its words.
    #[inline]
    pub(super) fn push(&mut self, words: &[u64]) {
        use DataType::*;
        let (_, value_words, options) = self.layout;
        let mut at = self.at;
        self.rows += 1;
        if let Some(valid) = &mut self.valid {
            valid.append(words[at] == 1);
            at += 1;
        }
        let flip = if options.descending { u64::MAX } else { 0 };
        let sign = 1u64 << 63;
        // A null's value words are 0: it decodes to some value the validity hides.
        let w = words[at] ^ flip;
        let signed = (w ^ sign) as i64;
        let v = &mut self.values;
        match &self.data_type {
            Int8 => v.push(signed as i8),
            Int16 => v.push(signed as i16),
            Int32 | Date32 | Time32(_) => v.push(signed as i32),
            Int64 | Date64 | Time64(_) | Timestamp(_, _) | Duration(_) => v.push(signed),
            UInt8 => v.push(w as u8),
            UInt16 => v.push(w as u16),
            UInt32 => v.push(w as u32),
            UInt64 => v.push(w),
            Float64 => v.push(f64::from_bits(from_total_order(w, sign))),
            Decimal128(_, _) if value_words == 2 => {
                let low = words[at + 1] ^ flip;
                v.push(((signed as i128) << 64) | i128::from(low));
            }
            Decimal128(_, _) => v.push(i128::from(signed)),
            // `new` takes no other type.
            _ => v.push(0u64),
        }
    }

    /// The column of every row pushed.
    pub(super) fn finish(self) -> Result<ArrayRef> {
        let nulls = self.valid.map(|mut v| NullBuffer::new(v.finish()));
        let data = ArrayData::builder(self.data_type)
            .len(self.rows)
            .add_buffer(self.values.into())
            .nulls(nulls)
            .build()?;
        Ok(make_array(data))
    }
}

/// The float bits whose IEEE total order word is `word` (the inverse of `total_order`).
#[inline]
fn from_total_order(word: u64, sign: u64) -> u64 {
    if word & sign != 0 {
        word & !sign
    } else {
        !word
    }
}
