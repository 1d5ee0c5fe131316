//! One page of a DynamoDB query, for the listings that page with a cursor (audit log,
//! machine clients). Each read asks for one item more than the page still needs, so
//! the last page says it is the last (no cursor to an empty page). A filter drops items
//! after DynamoDB has counted them; a page is filled with further reads, at most
//! `MAX_READS`, after which it is answered short, with a cursor. `query_all` reads a
//! query to its end instead, for the sweeper's lists.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;

use super::{Store, StoreError};
use crate::item::{Item, dynamo, get_s};

/// Reads of one page, at most.
const MAX_READS: usize = 10;

impl Store {
    /// Up to `limit` items of the table's query that `query` completes (an index, the
    /// key condition, a filter), newest first, from after the item whose position is `after`, and the position of the
    /// last one when more follow. An item's position is its `position` attribute (the
    /// sort key the listing reads by); `start_after` makes the start key from one.
    pub(super) async fn page(
        &self,
        query: impl Fn(QueryFluentBuilder) -> QueryFluentBuilder,
        after: Option<&str>,
        limit: usize,
        position: &str,
        start_after: impl Fn(&str) -> Item,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let mut items = Vec::with_capacity(limit + 1);
        let mut start = after.map(&start_after);
        let position_of = |item: &Item| get_s(item, position).unwrap_or_default().to_owned();
        for _ in 0..MAX_READS {
            let wanted = i32::try_from(limit + 1 - items.len()).unwrap_or(i32::MAX);
            let out = query(self.client.query().table_name(&self.table))
                .scan_index_forward(false)
                .set_exclusive_start_key(start)
                .limit(wanted)
                .send()
                .await
                .map_err(dynamo)?;
            items.extend(out.items.unwrap_or_default());
            if items.len() > limit {
                items.truncate(limit);
                let next = items.last().map(position_of);
                return Ok((items, next));
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok((items, None));
            }
        }
        // The filter dropped most of what was read: a short page, going on from the
        // last item read.
        Ok((items, start.as_ref().map(position_of)))
    }

    /// Every item of the table's query that `query` completes, page after page, or
    /// the first `limit` of them (a filter's survivors, in key order).
    pub(super) async fn query_all(
        &self,
        query: impl Fn(QueryFluentBuilder) -> QueryFluentBuilder,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = query(self.client.query().table_name(&self.table))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(dynamo)?;
            items.extend(out.items.unwrap_or_default());
            if let Some(limit) = limit.filter(|l| items.len() >= *l) {
                items.truncate(limit);
                return Ok(items);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}
