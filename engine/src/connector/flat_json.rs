//! A one-pass decoder for flat JSON objects, straight into the Arrow arrays of a source's
//! physical columns. It is the fast path of both JSON sources; arrow-json stays the reference.
//!
//! Per record it scans the keys of one object: the value of a declared key is read for that
//! column, any other value is skipped (validated, not kept). It accepts only records whose result
//! it knows to be exactly arrow-json's: strict JSON, one object per record, valid UTF-8, values of
//! the column's own type (or `null` in a nullable column), no duplicate declared key, no missing
//! NOT NULL column, no `\u` escape anywhere. On anything else it declines the whole chunk and the
//! caller decodes it with arrow-json, which then also reports the errors.
//!
//! Records of a stream mostly share their layout: the same keys in the same order, the same
//! skipped values. So the bytes between the declared values of the last record scanned in full
//! are kept (its `Shape`); a record with exactly those bytes around its values needs no key
//! scanning at all, only its values read. Identical bytes in the same place parse identically,
//! so this gives what the full scan would.

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder,
    RecordBatch, RecordBatchOptions, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use memchr::memchr2;

/// Decodes chunks of flat JSON objects into batches of one schema, or declines them.
#[derive(Debug)]
pub struct FlatJsonDecoder {
    schema: SchemaRef,
    kinds: Vec<Kind>,
    names: NameTable,
}

impl FlatJsonDecoder {
    /// A decoder for `schema`, or `None` when a column has a type it does not decode (anything
    /// but Utf8, Int64, Int32, Float64 and Boolean), there are more than 64 columns, or two
    /// columns share a name.
    pub fn new(schema: SchemaRef) -> Option<Self> {
        let fields = schema.fields();
        if fields.len() > 64 {
            return None;
        }
        let kinds = fields.iter().map(|f| Kind::of(f.data_type())).collect::<Option<Vec<_>>>()?;
        let names = NameTable::new(fields.iter().map(|f| f.name().as_bytes()))?;
        Some(Self { schema, kinds, names })
    }

    /// Decodes `records`, one JSON object each, into one batch of the schema: exactly the batch
    /// arrow-json's decoder would produce. `None` when any record is outside what this decoder
    /// accepts; the caller then decodes the chunk with arrow-json.
    pub fn decode<'r>(
        &self,
        records: impl ExactSizeIterator<Item = &'r [u8]>,
    ) -> Option<RecordBatch> {
        let rows = records.len();
        let mut builders: Vec<Builder> = self.kinds.iter().map(|k| k.builder(rows)).collect();
        let mut values = vec![Value::Null; builders.len()];
        let mut shape: Option<Shape<'r>> = None;
        let mut scratch = String::new();
        for record in records {
            if shape.as_ref().and_then(|s| s.values(record, &mut values)).is_none() {
                let mut runs = shape.take().map(|s| s.runs).unwrap_or_default();
                let tail = self.scan(record, &mut values, &mut runs)?;
                shape = Some(Shape { record, runs, tail });
            }
            for (builder, value) in builders.iter_mut().zip(&values) {
                builder.append(*value, &mut scratch)?;
            }
        }
        let columns = builders.iter_mut().map(Builder::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        // Refused (declined) when a NOT NULL column got a null: arrow-json fails there.
        RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options).ok()
    }

    /// Scans `record` in full: its declared values into `values` (the others left null), and
    /// into `runs` the bytes before each. Returns where the bytes after the last value start, or
    /// `None` to decline.
    fn scan<'r>(
        &self,
        record: &'r [u8],
        values: &mut [Value<'r>],
        runs: &mut Vec<(Range<usize>, usize)>,
    ) -> Option<usize> {
        // Keys and skipped strings are checked here, declared strings again when appended.
        std::str::from_utf8(record).ok()?;
        values.fill(Value::Null);
        runs.clear();
        let mut cursor = Cursor { bytes: record, pos: 0 };
        cursor.skip_whitespace();
        cursor.expect(b'{')?;
        let (mut seen, mut run_start) = (0u64, 0);
        cursor.members(|cursor, key| {
            // An escaped key might spell a declared name: arrow-json would match it.
            let Text::Plain(key) = key else { return None };
            let Some(column) = self.names.find(key) else { return cursor.skip_value(0) };
            let bit = 1 << column;
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            runs.push((run_start..cursor.pos, column));
            values[column] = cursor.value()?;
            run_start = cursor.pos;
            Some(())
        })?;
        cursor.skip_whitespace();
        (cursor.pos == record.len()).then_some(run_start)
    }
}

/// The layout of a record scanned in full: the bytes around its declared values.
struct Shape<'r> {
    record: &'r [u8],
    /// Per declared value, in record order: the bytes since the previous value, and its column.
    runs: Vec<(Range<usize>, usize)>,
    /// Where the bytes after the last value start.
    tail: usize,
}

impl<'r> Shape<'r> {
    /// Reads the declared values of `record` into `values` when it has exactly this shape's
    /// bytes around them; `None` (leaving `values` partly set) when it has not.
    fn values(&self, record: &'r [u8], values: &mut [Value<'r>]) -> Option<()> {
        let mut cursor = Cursor { bytes: record, pos: 0 };
        for (run, column) in &self.runs {
            cursor.literal(&self.record[run.clone()])?;
            values[*column] = cursor.value()?;
        }
        (record[cursor.pos..] == self.record[self.tail..]).then_some(())
    }
}

/// A column type the decoder fills.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Utf8,
    Int64,
    Int32,
    Float64,
    Boolean,
}

impl Kind {
    fn of(data_type: &DataType) -> Option<Self> {
        Some(match data_type {
            DataType::Utf8 => Kind::Utf8,
            DataType::Int64 => Kind::Int64,
            DataType::Int32 => Kind::Int32,
            DataType::Float64 => Kind::Float64,
            DataType::Boolean => Kind::Boolean,
            _ => return None,
        })
    }

    fn builder(self, rows: usize) -> Builder {
        match self {
            Kind::Utf8 => Builder::Utf8(StringBuilder::with_capacity(rows, rows * 8)),
            Kind::Int64 => Builder::Int64(Int64Builder::with_capacity(rows)),
            Kind::Int32 => Builder::Int32(Int32Builder::with_capacity(rows)),
            Kind::Float64 => Builder::Float64(Float64Builder::with_capacity(rows)),
            Kind::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(rows)),
        }
    }
}

/// The array being built for one column.
enum Builder {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Int32(Int32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
}

impl Builder {
    /// Appends `value`, or `None` when it is not of the column's type in a form arrow-json reads
    /// the same way.
    fn append(&mut self, value: Value<'_>, scratch: &mut String) -> Option<()> {
        match (self, value) {
            (builder, Value::Null) => builder.append_null(),
            (Builder::Utf8(b), Value::String(Text::Plain(text))) => {
                b.append_value(std::str::from_utf8(text).ok()?);
            }
            (Builder::Utf8(b), Value::String(Text::Escaped(raw))) => {
                b.append_value(unescape(std::str::from_utf8(raw).ok()?, scratch));
            }
            (Builder::Int64(b), Value::Number(n)) => b.append_value(n.integer()?),
            (Builder::Int32(b), Value::Number(n)) => b.append_value(n.integer()?.try_into().ok()?),
            (Builder::Float64(b), Value::Number(n)) => b.append_value(n.float()?),
            (Builder::Boolean(b), Value::Boolean(v)) => b.append_value(v),
            _ => return None,
        }
        Some(())
    }

    fn append_null(&mut self) {
        match self {
            Builder::Utf8(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Boolean(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Utf8(b) => ArrayBuilder::finish(b),
            Builder::Int64(b) => ArrayBuilder::finish(b),
            Builder::Int32(b) => ArrayBuilder::finish(b),
            Builder::Float64(b) => ArrayBuilder::finish(b),
            Builder::Boolean(b) => ArrayBuilder::finish(b),
        }
    }
}

/// Declared column names, found by an open-addressing table keyed on length and end bytes.
#[derive(Debug)]
struct NameTable {
    names: Vec<Box<[u8]>>,
    /// Column index + 1, or 0 for an empty slot.
    slots: Vec<u8>,
}

impl NameTable {
    /// `None` when two names are equal.
    fn new<'n>(names: impl Iterator<Item = &'n [u8]>) -> Option<Self> {
        let names: Vec<Box<[u8]>> = names.map(Box::from).collect();
        let mut table =
            Self { slots: vec![0; (names.len() * 4).next_power_of_two().max(16)], names };
        for column in 0..table.names.len() {
            let mut slot = table.slot(&table.names[column]);
            while table.slots[slot] != 0 {
                if table.names[usize::from(table.slots[slot]) - 1] == table.names[column] {
                    return None;
                }
                slot = (slot + 1) & (table.slots.len() - 1);
            }
            table.slots[slot] = u8::try_from(column + 1).ok()?;
        }
        Some(table)
    }

    fn slot(&self, key: &[u8]) -> usize {
        let (first, last) = (key.first().copied(), key.last().copied());
        let hash = (key.len() as u32).wrapping_mul(0x9E37_79B9)
            ^ u32::from(first.unwrap_or(0)).wrapping_mul(0x85EB_CA6B)
            ^ u32::from(last.unwrap_or(0)).wrapping_mul(0xC2B2_AE35);
        (hash >> 16) as usize & (self.slots.len() - 1)
    }

    /// The column named `key`.
    fn find(&self, key: &[u8]) -> Option<usize> {
        let mut slot = self.slot(key);
        loop {
            let column = usize::from(self.slots[slot]).checked_sub(1)?;
            if *self.names[column] == *key {
                return Some(column);
            }
            slot = (slot + 1) & (self.slots.len() - 1);
        }
    }
}

/// A string's content between its quotes.
#[derive(Debug, Clone, Copy)]
enum Text<'a> {
    /// Without escapes: the value itself.
    Plain(&'a [u8]),
    /// With escapes (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`), still escaped.
    Escaped(&'a [u8]),
}

/// A scalar value as read, not yet converted to its column's type.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Null,
    Boolean(bool),
    Number(Number<'a>),
    String(Text<'a>),
}

/// Writes `raw`, a string's content with valid escapes other than `\u`, unescaped to `out`.
fn unescape<'s>(raw: &str, out: &'s mut String) -> &'s str {
    out.clear();
    let mut rest = raw;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        out.push(match rest.as_bytes()[at + 1] {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            other => char::from(other),
        });
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    out
}

/// A number's digits as read: the value is `mantissa * 10^exponent`, negated if `negative`.
#[derive(Debug, Clone, Copy)]
struct Number<'a> {
    negative: bool,
    /// `None` when the digits do not fit in a `u64`.
    mantissa: Option<u64>,
    exponent: i64,
    /// No fraction and no exponent part.
    integral: bool,
    /// As written.
    text: &'a [u8],
}

impl Number<'_> {
    /// The value as a whole number, when it is written as one that fits an `i64`.
    fn integer(&self) -> Option<i64> {
        let magnitude = i128::from(self.mantissa.filter(|_| self.integral)?);
        i64::try_from(if self.negative { -magnitude } else { magnitude }).ok()
    }

    /// The value as the nearest `f64` (as every correctly rounding parser reads it), when finite.
    fn float(&self) -> Option<f64> {
        // Exact powers of ten: with a mantissa below 2^53, one correctly rounded operation.
        const POWERS: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
        ];
        let power = POWERS.get(self.exponent.unsigned_abs() as usize);
        let magnitude = match (self.mantissa.filter(|m| *m <= 1 << 53), power) {
            (Some(m), Some(p)) if self.exponent < 0 => m as f64 / p,
            (Some(m), Some(p)) => m as f64 * p,
            _ => {
                let text = std::str::from_utf8(self.text).ok()?;
                return text.parse::<f64>().ok().filter(|v| v.is_finite());
            }
        };
        Some(if self.negative { -magnitude } else { magnitude })
    }
}

/// A position in one record.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Consumes `byte`, or `None` when something else is next.
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.pos += 1)
    }

    /// Consumes `literal`, or `None` (consuming nothing) when it is not next.
    fn literal(&mut self, literal: &[u8]) -> Option<()> {
        self.bytes[self.pos..].starts_with(literal).then(|| self.pos += literal.len())
    }

    /// Reads a string whose opening quote is consumed, through its closing quote.
    fn string(&mut self) -> Option<Text<'a>> {
        let bytes = self.bytes;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let at = self.pos + memchr2(b'"', b'\\', &bytes[self.pos..])?;
            if bytes[at] == b'"' {
                self.pos = at + 1;
                let content = &bytes[start..at];
                return Some(if escaped { Text::Escaped(content) } else { Text::Plain(content) });
            }
            if !matches!(bytes.get(at + 1)?, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't')
            {
                return None;
            }
            escaped = true;
            self.pos = at + 2;
        }
    }

    /// Reads decimal digits into `value` (`None` once it overflows); returns how many there were.
    fn digits(&mut self, value: &mut Option<u64>) -> usize {
        let first = self.pos;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            *value = value.and_then(|v| v.checked_mul(10)?.checked_add(u64::from(digit - b'0')));
            self.pos += 1;
        }
        self.pos - first
    }

    /// Reads a number in strict JSON syntax. Whatever follows is the caller's to check: a
    /// number running on (`1.5.3`, `1e5e`) is then not followed by a delimiter and declined.
    fn number(&mut self) -> Option<Number<'a>> {
        let bytes = self.bytes;
        let start = self.pos;
        let negative = self.expect(b'-').is_some();
        let mut mantissa = Some(0u64);
        let whole = self.digits(&mut mantissa);
        if whole == 0 || (whole > 1 && bytes[start + usize::from(negative)] == b'0') {
            return None;
        }
        let mut exponent = 0i64;
        let mut integral = true;
        if self.expect(b'.').is_some() {
            let fraction = self.digits(&mut mantissa);
            if fraction == 0 {
                return None;
            }
            exponent -= fraction as i64;
            integral = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            let sign = match self.peek() {
                Some(b'-') => -1,
                Some(b'+') => 1,
                _ => 0,
            };
            self.pos += usize::from(sign != 0);
            let mut written = Some(0u64);
            if self.digits(&mut written) == 0 {
                return None;
            }
            // Beyond any f64; the exact figure only matters to the slow path, which rereads it.
            let written = written.filter(|e| *e < 1 << 40).map_or(1 << 40, |e| e as i64);
            exponent += if sign < 0 { -written } else { written };
            integral = false;
        }
        Some(Number { negative, mantissa, exponent, integral, text: &bytes[start..self.pos] })
    }

    /// Reads a scalar: `null`, `true`, `false`, a string or a number.
    fn value(&mut self) -> Option<Value<'a>> {
        Some(match self.peek()? {
            b'"' => {
                self.pos += 1;
                Value::String(self.string()?)
            }
            b'n' => self.literal(b"null").map(|()| Value::Null)?,
            b't' => self.literal(b"true").map(|()| Value::Boolean(true))?,
            b'f' => self.literal(b"false").map(|()| Value::Boolean(false))?,
            _ => Value::Number(self.number()?),
        })
    }

    /// Reads the members of an object whose `{` is consumed, through its `}`: `value` is called
    /// with the cursor at each member's value and must consume it.
    fn members(&mut self, mut value: impl FnMut(&mut Self, Text<'a>) -> Option<()>) -> Option<()> {
        self.skip_whitespace();
        if self.expect(b'}').is_some() {
            return Some(());
        }
        loop {
            self.expect(b'"')?;
            let key = self.string()?;
            self.skip_whitespace();
            self.expect(b':')?;
            self.skip_whitespace();
            value(self, key)?;
            self.skip_whitespace();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
            self.skip_whitespace();
        }
    }

    /// Skips one value, checking it is strict JSON without `\u` escapes; `depth` is its nesting.
    fn skip_value(&mut self, depth: u8) -> Option<()> {
        const MAX_DEPTH: u8 = 64;
        match self.peek()? {
            b'{' if depth < MAX_DEPTH => {
                self.pos += 1;
                self.members(|cursor, _| cursor.skip_value(depth + 1))
            }
            b'[' if depth < MAX_DEPTH => {
                self.pos += 1;
                self.skip_whitespace();
                if self.expect(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    self.skip_whitespace();
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b']' => {
                            self.pos += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                    self.skip_whitespace();
                }
            }
            _ => self.value().map(drop),
        }
    }
}
