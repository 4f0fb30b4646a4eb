//! The one-pass JSON decoder against arrow-json's decoder as the oracle: over generated chunks
//! (fields in any order, missing and extra fields, nested values, nulls, escapes, unicode, numbers
//! in many forms, whitespace, wrong types, broken records) it either declines or produces exactly
//! arrow-json's batch; and it does not decline ordinary ticks.

use std::cell::Cell;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::ReaderBuilder;
use engine::connector::flat_json::FlatJsonDecoder;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// The generated schema's columns: the ticks' own, one of every other decoded type, and a name
/// with a character JSON may escape (`note\/1` spells `note/1`).
const COLUMNS: [(&str, DataType); 7] = [
    ("symbol", DataType::Utf8),
    ("price", DataType::Float64),
    ("day_volume", DataType::Int64),
    ("timestamp", DataType::Int64),
    ("qty", DataType::Int32),
    ("halted", DataType::Boolean),
    ("note/1", DataType::Utf8),
];

fn schema(columns: &[(&str, DataType)], nullable: &[bool]) -> SchemaRef {
    let fields: Vec<Field> = columns
        .iter()
        .zip(nullable)
        .map(|((name, data_type), nullable)| Field::new(*name, data_type.clone(), *nullable))
        .collect();
    Arc::new(Schema::new(fields))
}

/// arrow-json's batch, each record fed on its own as the Kafka source does (exactly one object
/// each), and the same records as newline-separated lines as the filesystem source does.
fn arrow_json(schema: &SchemaRef, records: &[Vec<u8>]) -> Result<RecordBatch, ArrowError> {
    let build = || ReaderBuilder::new(Arc::clone(schema)).with_batch_size(records.len() + 1);
    let mut decoder = build().build_decoder()?;
    for (index, record) in records.iter().enumerate() {
        let mut consumed = 0;
        while consumed < record.len() {
            match decoder.decode(&record[consumed..])? {
                0 => return Err(ArrowError::JsonError("more than one object".into())),
                n => consumed += n,
            }
        }
        if decoder.has_partial_record() || decoder.len() != index + 1 {
            return Err(ArrowError::JsonError(format!("record {index} is not one object")));
        }
    }
    let batch = decoder.flush()?.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema)));
    let mut lines = build().build_decoder()?;
    lines.decode(&records.join(&b'\n'))?;
    let lines = lines.flush()?.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema)));
    if lines != batch {
        return Err(ArrowError::JsonError("lines and messages differ".into()));
    }
    Ok(batch)
}

fn fast(schema: &SchemaRef, records: &[Vec<u8>]) -> Option<RecordBatch> {
    let decoder = FlatJsonDecoder::new(Arc::clone(schema)).expect("every column type is decoded");
    decoder.decode(records.iter().map(Vec::as_slice))
}

/// Picks one of `items` as a `String`.
fn one_of(items: &[&'static str]) -> BoxedStrategy<String> {
    prop::sample::select(items.to_vec()).prop_map(String::from).boxed()
}

/// Adds `dirty`, weighted `1`, to `clean` (weighted `weight`) unless the generator is `clean`.
fn with_dirty(
    clean: bool,
    weight: u32,
    good: BoxedStrategy<String>,
    dirty: BoxedStrategy<String>,
) -> BoxedStrategy<String> {
    if clean { good } else { prop_oneof![weight => good, 1 => dirty].boxed() }
}

/// A JSON string: plain text, simple escapes, raw unicode and controls; when not `clean` also
/// `\u` escapes (valid or not), lone surrogates and invalid escapes.
fn string(clean: bool) -> BoxedStrategy<String> {
    let good = prop_oneof![
        12 => "[a-zA-Z0-9 .:-]{1,6}",
        3 => one_of(&[r#"\""#, r"\\", r"\/", r"\b", r"\f", r"\n", r"\r", r"\t"]),
        2 => one_of(&["é", "€", "😀", "日本", "\t", "\u{1}", "\u{7f}"]),
    ]
    .boxed();
    let dirty = one_of(&[
        r"\u00e9",
        r"\u20AC",
        r"\ud83d\ude00",
        r"\u0041",
        r"\u0000",
        r"\ud800",
        r"\udc00x",
        r"\u12",
        r"\x",
        r"\'",
        r"\U0041",
    ]);
    let piece = with_dirty(clean, 6, good, dirty);
    prop::collection::vec(piece, 0..5).prop_map(|p| format!("\"{}\"", p.concat())).boxed()
}

/// Whole numbers: ordinary, at the i32 and i64 limits; when not `clean` also beyond them and in
/// spellings arrow-json reads otherwise (or not at all).
fn integer(clean: bool) -> BoxedStrategy<String> {
    let good = prop_oneof![
        4 => (-100_000i64..100_000).prop_map(|v| v.to_string()),
        3 => any::<i64>().prop_map(|v| v.to_string()),
        2 => any::<i32>().prop_map(|v| v.to_string()),
        1 => one_of(&["0", "-0", "9223372036854775807", "-9223372036854775808", "2147483647",
            "-2147483648"]),
    ]
    .boxed();
    let dirty = prop_oneof![
        one_of(&[
            "9223372036854775808",
            "-9223372036854775809",
            "2147483648",
            "-2147483649",
            "18446744073709551616",
            "007",
            "-01",
            "1e3",
            "1E3",
            "1.0",
            "1.5",
            "-2.5e1",
            "+1",
            "1_000",
            "0x1F",
            "--1",
            "1-2",
        ]),
        "-?[1-9][0-9]{18,25}",
    ]
    .boxed();
    with_dirty(clean, 4, good, dirty)
}

/// Numbers with fractions and exponents, short and long, tiny and huge; when not `clean` also
/// beyond f64 and in spellings that are not JSON.
fn float(clean: bool) -> BoxedStrategy<String> {
    let finite = || any::<f64>().prop_filter("finite", |v| v.is_finite());
    let good = prop_oneof![
        4 => (-1e6f64..1e6).prop_map(|v| format!("{v:.3}")),
        2 => finite().prop_map(|v| v.to_string()),
        2 => finite().prop_map(|v| format!("{v:e}")),
        1 => any::<f32>().prop_filter("finite", |v| v.is_finite()).prop_map(|v| format!("{v:E}")),
        4 => "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,24})?([eE][+-]?[0-9]{1,2})?",
        1 => one_of(&[
            "1e308", "1.7976931348623157e308", "5e-324", "2e-324", "1e-400", "-1e-400", "-0.0",
            "0.0", "0e0", "-0e-5", "9007199254740993", "9007199254740993.0", "0.1e-22", "1e22",
            "1e23", "123456789012345678901234567890", "2.2250738585072011e-308",
            "0.000000000000000000000000000000000000000000001", "1e-0", "1E+2",
        ]),
    ]
    .boxed();
    let dirty = prop_oneof![
        one_of(&[
            "1.7976931348623159e308",
            "1e309",
            "-1e400",
            "1.",
            ".5",
            "1e",
            "1e+",
            "1.5.3",
            "Infinity",
            "-Infinity",
            "NaN",
            "1ee5",
            "01.5",
            "-",
            "+1.5",
        ]),
        "-?[1-9][0-9]{0,3}[eE][+-]?[0-9]{3,5}",
    ]
    .boxed();
    with_dirty(clean, 4, good, dirty)
}

/// Any value: scalars of every type, nested arrays and objects; when not `clean` also numbers in
/// strings, broken literals and broken nesting.
fn any_value(clean: bool) -> BoxedStrategy<String> {
    let scalar = prop_oneof![
        3 => string(clean),
        2 => integer(clean),
        2 => float(clean),
        2 => one_of(&["true", "false", "null"]),
    ]
    .boxed();
    let broken =
        one_of(&["tru", "nul", "nulll", "True", "falsey", "\"12\"", "\"1.5\"", "\"true\"", ""]);
    let leaf = with_dirty(clean, 8, scalar, broken);
    leaf.prop_recursive(3, 24, 4, move |inner| {
        let nested = prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-z]{0,3}", inner), 0..4).prop_map(|members| {
                let members: Vec<String> =
                    members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
        .boxed();
        with_dirty(
            clean,
            6,
            nested,
            one_of(&["[1,]", "{\"a\":1,}", "[1 2]", "{\"a\" 1}", "[", "{\"a\":}"]),
        )
    })
    .boxed()
}

/// A value of the column's own type.
fn typed(data_type: &DataType, clean: bool) -> BoxedStrategy<String> {
    match data_type {
        DataType::Utf8 => string(clean),
        DataType::Int64 => integer(clean),
        DataType::Int32 => {
            with_dirty(clean, 2, any::<i32>().prop_map(|v| v.to_string()).boxed(), integer(clean))
        }
        DataType::Float64 => prop_oneof![2 => float(clean), 1 => integer(clean)].boxed(),
        _ => one_of(&["true", "false"]),
    }
}

/// One declared column as a member. Its own type mostly; null or absent only when `nullable`
/// unless the record is not `clean`, which may also give it any value.
fn member(
    name: &str,
    data_type: &DataType,
    nullable: bool,
    clean: bool,
) -> BoxedStrategy<Option<(String, String)>> {
    let value = with_dirty(
        clean,
        8,
        typed(data_type, clean),
        prop_oneof![Just("null".to_string()), any_value(false)].boxed(),
    );
    let value = if nullable {
        prop_oneof![8 => value, 1 => Just("null".to_string())].boxed()
    } else {
        value
    };
    let name = name.to_string();
    let present = value.prop_map(move |v| Some((name.clone(), v)));
    if nullable || !clean {
        prop_oneof![8 => present, 1 => Just(None)].boxed()
    } else {
        present.boxed()
    }
}

/// A key the schema does not declare; when not `clean` also keys that spell a declared one
/// (escaped, or the same key again).
fn extra_key(clean: bool) -> BoxedStrategy<String> {
    let undeclared = prop_oneof![
        6 => "[a-z_]{0,10}",
        1 => one_of(&[r#"a\"b"#, r"a\\b", "é", "Symbol", "price ", "a\u{1}"]),
    ]
    .boxed();
    let dirty =
        one_of(&[r"sym\u0062ol", r"pr\u0069ce", r"note\/1", "symbol", "timestamp", "halted"]);
    with_dirty(clean, 6, undeclared, dirty)
}

const WHITESPACE: [&str; 8] = ["", "", "", " ", "\t", "\n", "\r\n", "  "];

/// A record before it is written: its members in order (with the declared column of each, if
/// any), the whitespace between its tokens, and the damage done to it.
#[derive(Debug, Clone)]
struct Template {
    members: Vec<(String, String, Option<usize>)>,
    spaces: Vec<&'static str>,
    mutation: Mutation,
    cut: u64,
}

impl Template {
    /// The record, with the value of declared column `c` replaced by `values[c]` and that of the
    /// `j`th undeclared member by `extras[j]` where they are given.
    fn write(&self, values: &[Option<String>], extras: &[Option<String>]) -> Vec<u8> {
        let mut ws = self.spaces.iter().cycle();
        let mut text = format!("{}{{", ws.next().unwrap());
        let mut extra = extras.iter();
        for (i, (key, value, column)) in self.members.iter().enumerate() {
            let replaced = match column {
                Some(c) => values[*c].as_ref(),
                None => extra.next().and_then(Option::as_ref),
            };
            let value = replaced.unwrap_or(value);
            let comma = if i > 0 { "," } else { "" };
            let [a, b, c, d] = [(); 4].map(|()| ws.next().unwrap());
            text.push_str(&format!("{comma}{a}\"{key}\"{b}:{c}{value}{d}"));
        }
        text.push_str(&format!("}}{}", ws.next().unwrap()));
        self.mutation.apply(text.into_bytes(), self.cut)
    }
}

/// One record for columns of this nullability: an object with its members in any order; when
/// not `clean` also with wrong values and keys, or broken.
fn template(nullable: [bool; 7], clean: bool) -> impl Strategy<Value = Template> {
    let declared: Vec<_> = COLUMNS
        .iter()
        .zip(nullable)
        .map(|((name, data_type), nullable)| member(name, data_type, nullable, clean))
        .collect();
    let extras = prop::collection::vec((extra_key(clean), any_value(clean)), 0..4);
    let members = (declared, extras).prop_flat_map(|(declared, extras)| {
        let declared = declared
            .into_iter()
            .enumerate()
            .filter_map(|(column, member)| member.map(|(k, v)| (k, v, Some(column))));
        let extras = extras.into_iter().map(|(k, v)| (k, v, None));
        Just(declared.chain(extras).collect::<Vec<_>>()).prop_shuffle()
    });
    let spaces = prop::collection::vec(prop::sample::select(WHITESPACE.to_vec()), 64);
    let mutation = if clean { Just(Mutation::None).boxed() } else { mutation().boxed() };
    (members, spaces, mutation, any::<u64>())
        .prop_map(|(members, spaces, mutation, cut)| Template { members, spaces, mutation, cut })
}

/// Columns' nullability and a chunk of records for them. Records are written from a few
/// templates, most of them clean, often with other values and now and then damaged: so
/// consecutive records share their layout wholly or in part, as in a stream.
fn chunk() -> impl Strategy<Value = ([bool; 7], Vec<Vec<u8>>)> {
    prop::array::uniform7(any::<bool>())
        .prop_flat_map(|nullable| {
            let template =
                prop_oneof![3 => template(nullable, true), 1 => template(nullable, false)];
            let values: Vec<_> = COLUMNS
                .iter()
                .zip(nullable)
                .map(|((_, data_type), nullable)| {
                    let null = u32::from(nullable);
                    let value =
                        prop_oneof![8 => typed(data_type, true), null => Just("null".into())];
                    prop::option::weighted(0.5, value)
                })
                .collect();
            let extras = prop::collection::vec(prop::option::weighted(0.2, any_value(true)), 3);
            // Damage to one record of a template, the others of it intact.
            let damage = (prop_oneof![12 => Just(Mutation::None), 1 => mutation()], any::<u64>());
            let row = (any::<prop::sample::Index>(), values, extras, damage);
            (
                Just(nullable),
                prop::collection::vec(template, 1..4),
                prop::collection::vec(row, 1..8),
            )
        })
        .prop_map(|(nullable, templates, rows)| {
            let records = rows
                .iter()
                .map(|(template, values, extras, (damage, cut))| {
                    damage.apply(template.get(&templates).write(values, extras), *cut)
                })
                .collect();
            (nullable, records)
        })
}

/// Damage done to a record.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Truncate,
    Append(&'static str),
    Replace(&'static str),
    InvalidUtf8,
}

impl Mutation {
    fn apply(&self, mut record: Vec<u8>, cut: u64) -> Vec<u8> {
        match self {
            Mutation::None => {}
            Mutation::Truncate => record.truncate(cut as usize % (record.len() + 1)),
            Mutation::Append(tail) => record.extend_from_slice(tail.as_bytes()),
            Mutation::Replace(with) => record = with.as_bytes().to_vec(),
            Mutation::InvalidUtf8 => {
                let at = cut as usize % record.len().max(1);
                record.insert(at.min(record.len()), 0xFF);
            }
        }
        record
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        8 => Just(Mutation::None),
        2 => Just(Mutation::Truncate),
        1 => Just(Mutation::InvalidUtf8),
        2 => prop::sample::select(vec!["x", "}", ",", "{}", " {\"qty\":1}", "\u{0}", "\u{c}", "0"])
            .prop_map(Mutation::Append),
        2 => prop::sample::select(vec![
            "", " ", "null", "[1,2]", "42", "\"s\"", "{}", "{,}", "{\"symbol\":\"A\",,\"price\":1}",
            "{\"symbol\":\"A\" \"price\":1}", "{\"symbol\":\"A\",\"price\":1,}", "{\"a\":1}{\"b\":2}",
            "{\"symbol\":\"A\"}\n{\"symbol\":\"B\"}", "\u{feff}{}", "{\"symbol\":\"A\",\"price\":1}",
        ])
        .prop_map(Mutation::Replace),
    ]
}

#[test]
fn fast_decoder_equals_arrow_json_or_declines() {
    const CASES: u32 = 3_000;
    let mut runner =
        TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    let accepted = Cell::new(0u32);
    runner
        .run(&chunk(), |(nullable, records)| {
            let schema = schema(&COLUMNS, &nullable);
            if let Some(batch) = fast(&schema, &records) {
                let oracle = arrow_json(&schema, &records);
                prop_assert!(
                    oracle.is_ok(),
                    "arrow-json fails where the fast decoder did not: {oracle:?}"
                );
                prop_assert_eq!(batch, oracle.expect("checked"));
                accepted.set(accepted.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    // The property says little if nearly everything is declined.
    assert!(accepted.get() > CASES / 3, "only {} of {CASES} chunks accepted", accepted.get());
}

const TICK: [(&str, &str); 10] = [
    ("event", "\"price\""),
    ("symbol", "\"SIM0101\""),
    ("currency", "\"USD\""),
    ("type", "\"Common Stock\""),
    ("exchange", "\"NYSE\""),
    ("mic_code", "\"XNYS\""),
    ("timestamp", "1714570200"),
    ("price", "196.723"),
    ("day_volume", "854934"),
    ("name", "\"Apple Inc\""),
];

#[test]
fn ordinary_ticks_are_not_declined() {
    let ticks = schema(
        &[
            ("symbol", DataType::Utf8),
            ("price", DataType::Float64),
            ("day_volume", DataType::Int64),
            ("timestamp", DataType::Int64),
        ],
        &[false, false, true, false],
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut records = vec![];
    for round in 0..200 {
        let mut fields: Vec<_> = TICK[..9].to_vec();
        if round > 0 {
            fields.shuffle(&mut rng);
        }
        if round % 3 == 1 {
            fields.retain(|(name, _)| *name != "day_volume");
        }
        let members: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        records.push(format!("{{{}}}", members.join(",")).into_bytes());
    }
    let batch = fast(&ticks, &records).expect("ordinary ticks are decoded by the fast decoder");
    assert_eq!(batch, arrow_json(&ticks, &records).unwrap());
    assert_eq!(batch.num_rows(), 200);
    assert_eq!(batch.column(2).null_count(), 67);
}

#[test]
fn subtle_records_are_declined() {
    let schema = schema(&COLUMNS, &[false, false, true, false, true, true, true]);
    let base = r#""symbol":"A","price":1.5,"timestamp":1"#;
    for record in [
        format!(r#"{{{base},"day_volume":"12"}}"#),
        format!(r#"{{{base},"day_volume":1.0}}"#),
        format!(r#"{{{base},"day_volume":1e3}}"#),
        format!(r#"{{{base},"day_volume":9223372036854775808}}"#),
        format!(r#"{{{base},"sym\u0062ol":"B"}}"#),
        format!(r#"{{{base},"note\/1":"B"}}"#),
        format!(r#"{{{base},"x":"\u00e9"}}"#),
        format!(r#"{{{base},"symbol":"B"}}"#),
        format!(r#"{{{base},,"x":1}}"#),
        format!(r#"{{{base}}} x"#),
        format!(r#"{{{base}}}{{{base}}}"#),
        r#"{"symbol":"A","timestamp":1}"#.to_string(),
        r#"{"symbol":null,"price":1.5,"timestamp":1}"#.to_string(),
        r#"{"symbol":"A","price":1.5e999,"timestamp":1}"#.to_string(),
        String::new(),
        "null".to_string(),
    ] {
        assert!(fast(&schema, &[record.clone().into_bytes()]).is_none(), "accepted {record}");
    }
}

#[test]
fn escapes_and_whitespace_are_decoded() {
    let schema = schema(&COLUMNS[..4], &[true, false, true, false]);
    let records: Vec<Vec<u8>> = [
        " {\t\"symbol\" : \"a\\\"b\\\\c\\/d\\n\\te\\u0000f\" ,\"price\":-0.0,\"timestamp\":-9223372036854775808 } ",
        r#"{"timestamp":0,"extra":{"a":[1,{"b":null}],"c":"é\"}"},"price":12345678901234567890.5e-3,"symbol":null}"#,
    ]
    .iter()
    .map(|r| r.as_bytes().to_vec())
    .collect();
    // "\u0000" is declined; without it the first record decodes.
    assert!(fast(&schema, &records).is_none());
    let records: Vec<Vec<u8>> =
        records.iter().map(|r| String::from_utf8_lossy(r).replace("\\u0000", "").into()).collect();
    let batch = fast(&schema, &records).expect("decoded");
    assert_eq!(batch, arrow_json(&schema, &records).unwrap());
}

#[test]
fn records_laid_out_like_the_previous_one_are_read_to_their_end() {
    let schema = schema(&COLUMNS[..4], &[false, false, true, false]);
    let first = r#"{"symbol":"A","price":1.5,"timestamp":1,"x":"y"}"#;
    let decode = |second: &str| fast(&schema, &[first.into(), second.into()]);
    for same_but_values in [
        r#"{"symbol":"BB","price":-2e3,"timestamp":22,"x":"y"}"#,
        r#"{"symbol":null,"price":null,"timestamp":null,"x":"y"}"#,
    ] {
        let records = [first.into(), same_but_values.into()];
        assert_eq!(decode(same_but_values), arrow_json(&schema, &records).ok());
    }
    let more = r#"{"symbol":"B","price":2.5,"timestamp":2,"x":"y","day_volume":7}"#;
    let batch = decode(more).expect("decoded in full");
    assert_eq!(batch, arrow_json(&schema, &[first.into(), more.into()]).unwrap());
    for broken in [
        r#"{"symbol":"B","price":2.5,"timestamp":2,"x":"y"} x"#,
        r#"{"symbol":"B","price":2.5,"timestamp":2,"x":"y"}{}"#,
        r#"{"symbol":"B","price":2.5,"timestamp":2,"x":"y","symbol":"C"}"#,
        r#"{"symbol":"B","price":"2.5","timestamp":2,"x":"y"}"#,
        r#"{"symbol":"B","price":2.5,"timestamp":2.5,"x":"y"}"#,
        r#"{"symbol":"B","price":2.5,"timestamp":2,"x":"y""#,
    ] {
        assert!(decode(broken).is_none(), "accepted {broken}");
    }
}
