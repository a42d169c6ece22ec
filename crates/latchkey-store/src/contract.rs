//! Backend contract suite (being written).
