//! Analysis: the connectivity matrix and explanations of verdicts, from the same
//! resolution the plan is built from. No nftables vocabulary, no I/O.
