//! One page of a DynamoDB query, for the listings that page with a cursor (audit log,
//! machine clients). Each read asks for one item more than the page still needs, so
//! the last page says it is the last (no cursor to an empty page). A filter drops items
//! after DynamoDB has counted them; a page is filled with further reads, at most
//! `MAX_READS`, after which it is answered short, with a cursor.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;

use super::{Store, StoreError};
use crate::item::{Item, dynamo};

/// Reads of one page, at most.
const MAX_READS: usize = 10;

/// A page of items, and the key to start the next page after (absent on the last).
pub(super) struct ItemPage {
    pub items: Vec<Item>,
    pub next: Option<Item>,
}

impl Store {
    /// Up to `limit` items of the query `build` makes for a start key and a read limit,
    /// from after `start`. `key_of` gives the start key that follows an item.
    pub(super) async fn page(
        &self,
        build: impl Fn(Option<Item>, i32) -> QueryFluentBuilder,
        start: Option<Item>,
        limit: usize,
        key_of: impl Fn(&Item) -> Item,
    ) -> Result<ItemPage, StoreError> {
        let mut items = Vec::with_capacity(limit + 1);
        let mut start = start;
        for _ in 0..MAX_READS {
            let wanted = i32::try_from(limit + 1 - items.len()).unwrap_or(i32::MAX);
            let out = build(start, wanted).send().await.map_err(dynamo)?;
            items.extend(out.items.unwrap_or_default());
            if items.len() > limit {
                items.truncate(limit);
                let next = items.last().map(&key_of);
                return Ok(ItemPage { items, next });
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(ItemPage { items, next: None });
            }
        }
        // The filter dropped most of what was read: a short page, and go on from the
        // last item read.
        Ok(ItemPage { items, next: start })
    }
}
