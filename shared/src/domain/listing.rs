//! A page of a listing that pages with a cursor: its items, newest first, and the
//! position the next page starts after (a sort key), which the API seals into a cursor.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Absent on the last page.
    pub after: Option<String>,
}

stored_enum! {
    /// Which of a tenant's machine clients a listing shows.
    #[derive(Default)]
    pub enum ClientFilter {
        /// Active and revoked ones.
        #[default]
        All,
        /// Those whose tokens are accepted.
        Active,
        Revoked,
    }
}
