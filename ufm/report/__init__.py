"""Reports: one table formatter, one set of summaries, one figure set, the results-folder writer.

Summaries and figures read result rows (:func:`ufm.load_results`, or the rows a job returns);
statistics use the valid rows only and say how many failed rows they left out.
"""

from .figures import plot_gap_ecdf as plot_gap_ecdf
from .figures import plot_lambda_min_vs_gap as plot_lambda_min_vs_gap
from .figures import plot_lambda_pos_min as plot_lambda_pos_min
from .figures import plot_nc_traces as plot_nc_traces
from .figures import plot_negative_counts as plot_negative_counts
from .figures import plot_saddle_bound as plot_saddle_bound
from .figures import plot_status_counts as plot_status_counts
from .folder import save_figure as save_figure
from .folder import write_report as write_report
from .summaries import class_summary as class_summary
from .summaries import optimum_summary as optimum_summary
from .summaries import valid_rows as valid_rows
from .sweep import SweepStatus as SweepStatus
from .sweep import load_rows as load_rows
from .sweep import sweep_report as sweep_report
from .sweep import sweep_status as sweep_status
from .tables import format_table as format_table
