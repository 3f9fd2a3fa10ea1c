//! A top-k over a Parquet scan reads every row group's first rows before the rest of any.
//!
//! A `SortExec` with a fetch (a top-k) sharpens a dynamic filter as it sees rows, and the scan
//! below it evaluates that filter as it decodes (`pushdown_filters`): the other columns of a
//! row group are decoded only for the rows that pass. But the filter is evaluated a whole row
//! group at a time, before any of its rows reach the top-k, so each partition's first row
//! group is decoded whole, against a filter that still passes everything. SpatialBench's Q4
//! (the 1,000 largest tips of 6M trips, with their pickup points) decoded the WKB points of
//! 3M rows so — two row groups of 1.5M, one a partition — to keep 1,000.
//!
//! [`ScanHeadRule`] splits each file of such a scan in two, as Parquet access plans: first
//! the head of every row group it reads ([`HEAD_ROWS`] rows each), then the rest of them. The
//! top-k has a threshold after the heads, and the rest is filtered by it. Every row is read
//! exactly once, and a top-k does not depend on the order rows come in; scans that promise an
//! order, files that already carry an access plan, and files whose footer cannot be read here
//! are left as they are.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, RowGroupAccess};
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use datafusion::parquet::file::metadata::ParquetMetaDataReader;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::ExecutionPlan;

/// Rows read from the head of each row group before any row group's rest: eight batches of
/// DataFusion's default size, enough for a top-k of thousands to have a sharp threshold.
pub const HEAD_ROWS: usize = 65_536;

/// See the module's documentation.
#[derive(Debug, Default)]
pub struct ScanHeadRule;

impl PhysicalOptimizerRule for ScanHeadRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let Some(sort) = node.downcast_ref::<SortExec>() else { return Ok(Transformed::no(node)) };
            let split = match (sort.fetch(), sort.input().downcast_ref::<DataSourceExec>()) {
                (Some(_), Some(scan)) => split_scan(scan),
                _ => None,
            };
            match split {
                Some(scan) => {
                    Ok(Transformed::yes(node.clone().replace_children(vec![scan], crate::recompute())?))
                }
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "meridian_scan_head"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The scan with each file split into its heads and its rests, or `None` where it is not a
/// Parquet scan that may be split (see the module's documentation) or no file was.
fn split_scan(scan: &DataSourceExec) -> Option<Arc<dyn ExecutionPlan>> {
    let config = scan.data_source().downcast_ref::<FileScanConfig>()?;
    config.file_source().downcast_ref::<ParquetSource>()?;
    if !config.output_ordering.is_empty() {
        return None;
    }
    let mut any = false;
    let groups: Vec<FileGroup> = config
        .file_groups
        .iter()
        .map(|group| {
            let mut heads = Vec::new();
            let mut rests = Vec::new();
            for file in group.files() {
                match split_file(file) {
                    Some((head, rest)) => {
                        any = true;
                        heads.push(head);
                        rests.push(rest);
                    }
                    None => rests.push(file.clone()),
                }
            }
            heads.extend(rests);
            FileGroup::new(heads)
        })
        .collect();
    if !any {
        return None;
    }
    let config = FileScanConfigBuilder::from(config.clone()).with_file_groups(groups).build();
    Some(DataSourceExec::from_data_source(config))
}

/// `file` as two: its row groups' heads, then their rests. The row groups are the file's
/// (its footer read here); the file's byte range stays on both, so each reads only the row
/// groups the range gives it.
fn split_file(file: &PartitionedFile) -> Option<(PartitionedFile, PartitionedFile)> {
    if !file.extensions.is_empty() || !file.partition_values.is_empty() {
        return None;
    }
    // A local file (`meridian sql` registers paths); anything else is left alone.
    let path = std::path::Path::new("/").join(file.object_meta.location.as_ref());
    let opened = std::fs::File::open(&path).ok()?;
    if opened.metadata().ok()?.len() != file.object_meta.size {
        return None;
    }
    let metadata = ParquetMetaDataReader::new().parse_and_finish(&opened).ok()?;
    let rows: Vec<usize> =
        metadata.row_groups().iter().map(|g| usize::try_from(g.num_rows()).unwrap_or(0)).collect();
    if rows.iter().all(|&n| n <= HEAD_ROWS) {
        return None;
    }
    // A row group no longer than the head is all head.
    let access = |head: bool| -> Vec<RowGroupAccess> {
        rows.iter()
            .map(|&n| match (n <= HEAD_ROWS, head) {
                (true, true) => RowGroupAccess::Scan,
                (true, false) => RowGroupAccess::Skip,
                (false, true) => RowGroupAccess::Selection(RowSelection::from(vec![
                    RowSelector::select(HEAD_ROWS),
                    RowSelector::skip(n - HEAD_ROWS),
                ])),
                (false, false) => RowGroupAccess::Selection(RowSelection::from(vec![
                    RowSelector::skip(HEAD_ROWS),
                    RowSelector::select(n - HEAD_ROWS),
                ])),
            })
            .collect()
    };
    let part = |access: Vec<RowGroupAccess>| {
        let mut part = file.clone();
        // The file's statistics are the two parts' together.
        part.statistics = None;
        part.extensions.insert(ParquetAccessPlan::new(access));
        part
    };
    Some((part(access(true)), part(access(false))))
}
