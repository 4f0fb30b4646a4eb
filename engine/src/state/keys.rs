//! Grouping keys (the GROUP BY values other than the window bounds) interned as row bytes.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::HashMap;

/// Dense ids for distinct grouping keys.
pub type KeyId = u32;

/// Maps each distinct key to a dense [`KeyId`] and back to its column values.
#[derive(Debug)]
pub struct KeyInterner {
    converter: RowConverter,
    ids: HashMap<Box<[u8]>, KeyId>,
    rows: Vec<Box<[u8]>>,
}

impl KeyInterner {
    /// An interner for keys of the given column types (none: every row has the same key).
    pub fn new(types: &[DataType]) -> Result<Self, ArrowError> {
        let fields = types.iter().map(|t| SortField::new(t.clone())).collect();
        Ok(Self { converter: RowConverter::new(fields)?, ids: HashMap::default(), rows: vec![] })
    }

    /// The key id of every row of `columns` (`num_rows` rows), interning new keys.
    pub fn intern(
        &mut self,
        columns: &[ArrayRef],
        num_rows: usize,
    ) -> Result<Vec<KeyId>, ArrowError> {
        if columns.is_empty() {
            if self.rows.is_empty() {
                self.rows.push(Box::new([]));
            }
            return Ok(vec![0; num_rows]);
        }
        let rows = self.converter.convert_columns(columns)?;
        let mut out = Vec::with_capacity(num_rows);
        for row in rows.iter() {
            let bytes = row.as_ref();
            let id = match self.ids.get(bytes) {
                Some(id) => *id,
                None => {
                    let id = self.rows.len() as KeyId;
                    self.rows.push(bytes.into());
                    self.ids.insert(bytes.into(), id);
                    id
                }
            };
            out.push(id);
        }
        Ok(out)
    }

    /// The key columns for `keys`, one row per id.
    pub fn columns(&self, keys: &[KeyId]) -> Result<Vec<ArrayRef>, ArrowError> {
        let parser = self.converter.parser();
        self.converter.convert_rows(keys.iter().map(|k| parser.parse(&self.rows[*k as usize])))
    }

    /// Drops every key for which `keep` is false; returns the new id of each old id.
    pub fn retain(&mut self, keep: impl Fn(KeyId) -> bool) -> Vec<Option<KeyId>> {
        let old = std::mem::take(&mut self.rows);
        self.ids.clear();
        let mut remap = Vec::with_capacity(old.len());
        for (id, row) in old.into_iter().enumerate() {
            if keep(id as KeyId) {
                let new_id = self.rows.len() as KeyId;
                if !row.is_empty() {
                    self.ids.insert(row.clone(), new_id);
                }
                self.rows.push(row);
                remap.push(Some(new_id));
            } else {
                remap.push(None);
            }
        }
        remap
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}
