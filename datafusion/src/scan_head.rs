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
//!
//! Under the same top-k, the scan's view columns (`BinaryView`, `Utf8View`: how DataFusion
//! reads Parquet's strings and binaries) are compacted as they come ([`CompactViewsExec`]). A
//! view points into the decoded Parquet page it came from, and the top-k keeps every batch one
//! of its rows is in — its compactions interleave views, keeping their buffers — so a row
//! past the filter kept its whole page: Q4's top 1,000 held 360 MB of pages, and decompressing
//! into fresh memory each time was a third of its time.

use std::fmt;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::Result;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, RowGroupAccess};
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use datafusion::parquet::file::metadata::ParquetMetaDataReader;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::ReplaceChildrenOptions;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

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
            let (Some(_), Some(scan)) = (sort.fetch(), sort.input().downcast_ref::<DataSourceExec>()) else {
                return Ok(Transformed::no(node));
            };
            let split = split_scan(scan);
            let views = scan.schema().fields().iter().any(|f| is_view(f.data_type()));
            if split.is_none() && !views {
                return Ok(Transformed::no(node));
            }
            let mut input = split.unwrap_or_else(|| sort.input().clone());
            if views {
                input = Arc::new(CompactViewsExec::new(input));
            }
            Ok(Transformed::yes(node.clone().replace_children(vec![input], crate::recompute())?))
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

fn is_view(t: &DataType) -> bool {
    matches!(t, DataType::BinaryView | DataType::Utf8View)
}

/// Its input's batches with every view column whose buffers hold more than twice the bytes
/// its values need (and more than [`CompactViewsExec::SLACK`]) copied into buffers of their
/// own, so that what the batch keeps alive is its own rows. See the module's documentation.
#[derive(Debug)]
pub struct CompactViewsExec {
    input: Arc<dyn ExecutionPlan>,
}

impl CompactViewsExec {
    /// Buffer bytes a column may hold past twice its values' before it is compacted: the
    /// copies of small batches would cost more than they free.
    pub const SLACK: usize = 64 << 10;

    /// Compacts `input`'s view columns.
    pub fn new(input: Arc<dyn ExecutionPlan>) -> CompactViewsExec {
        CompactViewsExec { input }
    }
}

/// `batch` with its wasteful view columns compacted (see [`CompactViewsExec`]).
pub fn compact_views(batch: RecordBatch) -> Result<RecordBatch> {
    let mut columns: Option<Vec<ArrayRef>> = None;
    for (k, column) in batch.columns().iter().enumerate() {
        let compacted: Option<ArrayRef> = match column.data_type() {
            DataType::BinaryView => {
                let a = column.as_binary_view();
                wasteful(a.data_buffers(), a.views()).then(|| Arc::new(a.gc()) as ArrayRef)
            }
            DataType::Utf8View => {
                let a = column.as_string_view();
                wasteful(a.data_buffers(), a.views()).then(|| Arc::new(a.gc()) as ArrayRef)
            }
            _ => None,
        };
        if let Some(c) = compacted {
            columns.get_or_insert_with(|| batch.columns().to_vec())[k] = c;
        }
    }
    match columns {
        Some(columns) => Ok(RecordBatch::try_new(batch.schema(), columns)?),
        None => Ok(batch),
    }
}

/// Whether buffers holding `buffers` bytes keep far more than the `views` need: a view longer
/// than 12 bytes points into them (a null's view is zero, so counts nothing).
fn wasteful(buffers: &[datafusion::arrow::buffer::Buffer], views: &[u128]) -> bool {
    let held: usize = buffers.iter().map(|b| b.len()).sum();
    let used: usize = views.iter().map(|&v| v as u32 as usize).filter(|&len| len > 12).sum();
    held > 2 * used + CompactViewsExec::SLACK
}

impl DisplayAs for CompactViewsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompactViewsExec")
    }
}

impl ExecutionPlan for CompactViewsExec {
    fn name(&self) -> &'static str {
        "CompactViewsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(CompactViewsExec::new(input))),
            _ => Err(datafusion::error::DataFusionError::Internal("CompactViewsExec takes one child".into())),
        }
    }

    #[allow(deprecated)] // still required by the trait; it delegates to replace_children
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, crate::recompute())
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let compacted = input.map(|batch| batch.and_then(compact_views));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, compacted)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{BinaryViewArray, StringViewArray};
    use arrow_schema::{Field, Schema};

    fn held(a: &dyn Array) -> usize {
        match a.data_type() {
            DataType::BinaryView => a.as_binary_view().data_buffers().iter().map(|b| b.len()).sum(),
            _ => a.as_string_view().data_buffers().iter().map(|b| b.len()).sum(),
        }
    }

    #[test]
    fn a_few_rows_of_a_large_page_keep_only_their_own_bytes() {
        // 20,000 values of 40 bytes, one null in ten; a batch of every 997th row, as a filter
        // that passes few rows leaves it: views into all 720 KB of them.
        let values: Vec<Option<String>> =
            (0..20_000).map(|i| (i % 10 != 3).then(|| format!("{i:>40}"))).collect();
        let strings = StringViewArray::from_iter(values.iter().map(|v| v.as_deref()));
        let binaries = BinaryViewArray::from_iter(values.iter().map(|v| v.as_deref().map(str::as_bytes)));
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8View, true),
            Field::new("b", DataType::BinaryView, true),
        ]));
        let full = RecordBatch::try_new(schema, vec![Arc::new(strings), Arc::new(binaries)]).unwrap();
        let picked = arrow_array::UInt32Array::from_iter_values((0..20_000).step_by(997));
        let sparse = datafusion::arrow::compute::take_record_batch(&full, &picked).unwrap();
        assert!(held(sparse.column(0).as_ref()) >= 700_000);
        let compacted = compact_views(sparse.clone()).unwrap();
        assert_eq!(compacted, sparse, "the same values, nulls included");
        for column in compacted.columns() {
            assert!(held(column.as_ref()) <= 21 * 40, "{} bytes held", held(column.as_ref()));
        }
        // A batch that uses its buffers is passed on as it is: the same buffers.
        let kept = compact_views(full.clone()).unwrap();
        for (a, b) in kept.columns().iter().zip(full.columns()) {
            assert!(Arc::ptr_eq(a, b));
        }
    }
}
