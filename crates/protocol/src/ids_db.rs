//! The id types as database values, for the stores (behind the `sqlite` and `scylla`
//! features): bound and read exactly as the strings they wrap.

use crate::ids::{ChatId, DeviceId, UserId};

macro_rules! db_value {
    ($name:ident) => {
        #[cfg(feature = "sqlite")]
        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                self.as_str().to_sql()
            }
        }

        #[cfg(feature = "sqlite")]
        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                String::column_result(value).map($name::from)
            }
        }

        #[cfg(feature = "scylla")]
        impl scylla::serialize::value::SerializeValue for $name {
            fn serialize<'b>(
                &self,
                typ: &scylla::cluster::metadata::ColumnType,
                writer: scylla::serialize::writers::CellWriter<'b>,
            ) -> Result<
                scylla::serialize::writers::WrittenCellProof<'b>,
                scylla::serialize::SerializationError,
            > {
                self.as_str().serialize(typ, writer)
            }
        }
    };
}

db_value!(UserId);
db_value!(DeviceId);
db_value!(ChatId);
