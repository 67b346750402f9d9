/**
 * What each file of figures/ is: the caption, notebook, paper section and claim of every figure
 * and table the findings notebooks save. The gallery (figures/index.html, figures/README.md) and
 * CLAIMS.md are written from this catalog and the files on disk, never by hand, and a notebook
 * cannot save a figure that has no entry here (`exportFindings` refuses it, naming this file).
 *
 * Captions say what a figure shows and how to read it, in one or two sentences; they hold no
 * numbers, which live in the figure, its CSV and CLAIMS.md.
 */
import { CLAIM_TITLES, type ClaimId } from '../analysis/claims';

export type { ClaimId } from '../analysis/claims';

/** A findings notebook as the gallery introduces it. */
export interface NotebookInfo {
  /** File name without `.ipynb`, also the folder of its figures: `02_gmt_vs_sft`. */
  id: string;
  /** The question it answers, as its first heading puts it. */
  title: string;
  /** Where the paper says what it tests. */
  section: string;
}

/** One saved figure or table. */
export interface CatalogEntry {
  notebook: string;
  /** File name without extension, as passed to `exportFindings`. */
  name: string;
  kind: 'figure' | 'table';
  /** One or two sentences: what it shows and how to read it. */
  caption: string;
  /** The numbered claim of CLAIMS.md it is evidence for. */
  claim?: ClaimId;
  /** For entries without `claim`: what it supports instead (context, a protocol choice, …). */
  supports?: string;
  /** Overrides the notebook's paper section. */
  section?: string;
  /** CLAIMS.md embeds this figure's PNG under its claim. */
  behindClaim?: boolean;
}

/** The notebooks that save evidence, in teaching order. */
export const FINDINGS_NOTEBOOKS: readonly NotebookInfo[] = [
  { id: '01_gmt_in_five_minutes', title: 'GMT in five minutes', section: '§3, Algorithm 1' },
  { id: '02_gmt_vs_sft', title: 'Finding 1: GMT beats vanilla fine-tuning?', section: '§4, Tables 1–3' },
  { id: '03_mask_ratio', title: 'Finding 2: GMT is insensitive to the mask ratio?', section: '§4, the mask-ratio analysis' },
  { id: '04_efficiency', title: 'Finding 3: GMT costs about what SFT costs?', section: '§3 and the efficiency discussion' },
  { id: '05_inside_the_mask', title: 'Inside the mask', section: '§3, why the mask is recomputed at every update' },
  { id: '06_gpu_ablations', title: 'GMT\'s mask on a GPU: ablations', section: '§3, the selection rule taken apart (not in the paper)' },
  { id: '07_protocol_2', title: 'Protocol 2: a pilot chooses the protocol, then the claims with power', section: '§4, the paper\'s claims retested with intervals narrow enough to decide them' },
];

const fig = (notebook: string, name: string, caption: string, rest: Partial<CatalogEntry> = {}): CatalogEntry => ({ notebook, name, kind: 'figure', caption, ...rest });
const tab = (notebook: string, name: string, caption: string, rest: Partial<CatalogEntry> = {}): CatalogEntry => ({ notebook, name, kind: 'table', caption, ...rest });

const NB1 = '01_gmt_in_five_minutes';
const NB2 = '02_gmt_vs_sft';
const NB3 = '03_mask_ratio';
const NB4 = '04_efficiency';
const NB5 = '05_inside_the_mask';
const NB6 = '06_gpu_ablations';
const NB7 = '07_protocol_2';
const HOW_GMT_WORKS = 'how GMT builds its mask (context; no claim is tested here)';
const PROTOCOL = 'the choice of the findings\' training length, 400 updates (a protocol study of this lab)';
const INSIDE = 'the paper\'s motivation for recomputing the mask at every update (not a numbered claim)';
const ABLATION = 'which parts of GMT\'s rule matter (an ablation beyond the paper; no numbered claim)';
const PILOT = 'the choice of protocol 2 (figures/PROTOCOL.md): which protocol buys the narrowest intervals per machine-minute';
const P2 = 'protocol 2\'s verdicts (figures/CLAIMS.md, section "Protocol 2")';
const SIZE = 'the size question, beyond the paper (figures/CLAIMS.md, protocol 2)';

/** Every figure and table the findings notebooks save, in the order the gallery shows them. */
export const FINDINGS_CATALOG: readonly CatalogEntry[] = [
  fig(NB1, 'grad_histogram', 'The magnitudes |Γ| of one weight matrix\'s averaged gradient in one update, on a log scale, with the threshold T_k that k = 0.3 gives per tensor and over the whole model. Everything left of a threshold is zeroed for this update.', { supports: HOW_GMT_WORKS }),
  fig(NB1, 'mask_corner', 'The mask M of the same update for the top-left corner of that matrix: kept entries light, zeroed ones dark. Look for columns zeroed whole: hidden units this batch barely used.', { supports: HOW_GMT_WORKS }),
  fig(NB1, 'training_loss', 'Training and validation loss of the short GMT run the notebook makes live (k = 0.3, tensor scope). It shows the whole protocol running end to end, not a comparison.', { supports: HOW_GMT_WORKS }),

  fig(NB2, 'paired_vs_sft', 'Each method\'s test accuracy minus SFT\'s on the same seeds, per task, with 95% confidence intervals. Claim 1\'s rule reads GMT\'s bar: reproduced if its whole interval lies above 0.', { claim: 1, behindClaim: true }),
  fig(NB2, 'accuracy', 'Mean test accuracy of the seven methods on the math and code tasks, with 95% confidence intervals over seeds. Claim 1 is judged on the paired differences above instead, which cancel the noise that runs on one seed share.', { claim: 1 }),
  fig(NB2, 'validation_loss_math', 'Validation loss during training on the math task, mean over seeds per method with a 95% band (log scale). Curves that lie on top of each other mean the methods fit the task at the same pace.', { claim: 1 }),
  fig(NB2, 'validation_loss_code', 'Validation loss during training on the code task, mean over seeds per method with a 95% band (log scale). It is the continuous companion of the accuracy comparison.', { claim: 1 }),
  fig(NB2, 'forgetting_facts', 'How many arithmetic facts of the base model each method still answers after fine-tuning, per task, against the base model\'s level in the title. Masking fewer entries is sometimes argued to forget less; this is where to look.', { supports: 'forgetting, which the paper discusses beside claim 1 (not a numbered claim)', section: '§4, forgetting' }),
  fig(NB2, 'protocol_accuracy_vs_length', 'SFT\'s test accuracy after 100 to 400 updates, one dotted line per seed and the mean in bold, per task. The findings compare methods where this no longer moves much.', { supports: PROTOCOL, section: 'protocol (this lab\'s, not the paper\'s)' }),
  fig(NB2, 'protocol_validation_loss', 'SFT\'s validation loss through the longest protocol runs, one line per task and seed (log scale). How much it still falls near the end is what fixed the findings\' training length.', { supports: PROTOCOL, section: 'protocol (this lab\'s, not the paper\'s)' }),
  tab(NB2, 'paired_vs_sft_table', 'Each method minus SFT on the same seeds: mean difference in accuracy points, 95% CI, paired t-test p and Holm-adjusted p.', { claim: 1 }),
  tab(NB2, 'accuracy_table', 'Test accuracy per task and method: seeds, mean, SD and 95% CI.', { claim: 1 }),
  tab(NB2, 'noise', 'Run-to-run noise per task: seed SD of SFT and GMT, SD of their paired difference, the CI half-width it gives, and the seeds a ±3-point interval would need.', { claim: 1 }),
  tab(NB2, 'forgetting', 'Forgetting probes after fine-tuning per task and method (arithmetic facts in points, loss on general text), with the base model\'s rows.', { supports: 'forgetting, which the paper discusses beside claim 1 (not a numbered claim)', section: '§4, forgetting' }),

  fig(NB3, 'accuracy_vs_ratio', 'Test accuracy against the mask ratio k for GMT at tensor and global scope and for random masking at the same ratios, with 95% bands; the dashed level is SFT (k = 0). A flat GMT curve over k = 0.1–0.5 is what claim 2 says.', { claim: 2, behindClaim: true }),
  fig(NB3, 'val_loss_vs_ratio', 'Validation loss against the mask ratio k for the same series, with 95% bands and SFT\'s level. It shows where larger ratios start to slow fitting.', { claim: 2 }),
  tab(NB3, 'equivalence_checks', 'Claim 2\'s rule applied: for each scope and k, the paired difference to k = 0.3 with its 90% CI and the TOST verdict at ±3 points.', { claim: 2 }),
  tab(NB3, 'accuracy_vs_ratio_table', 'Test accuracy per series and mask ratio: seeds, mean, SD and 95% CI (the numbers behind the accuracy figure).', { claim: 2 }),

  fig(NB4, 'overhead_vs_sft', 'Each method\'s update time over SFT\'s in an interleaved benchmark, end to end (paired per round) and the method\'s own time outside the gradients, as % of an SFT update with 95% intervals. Claim 3 reads GMT\'s end-to-end bar against 5%.', { claim: 3, behindClaim: true }),
  fig(NB4, 'update_time', 'Median time of one update per method in the interleaved benchmark, with p10–p90 whiskers. The sft (repeat) row times SFT a second time: it shows this machine\'s noise floor.', { claim: 3 }),
  fig(NB4, 'run_wall_time', 'Training wall time per run of notebook 02, mean per method with 95% intervals. It is the noisier, whole-run view of claim 3, since those runs shared the machine.', { claim: 3 }),
  tab(NB4, 'update_time_table', 'The interleaved benchmark per method: median, p10 and p90 ms per update, paired ratio to SFT with its 95% CI, and the method\'s own extra time.', { claim: 3 }),
  tab(NB4, 'memory', 'Tensor memory each method holds while it trains, and its excess over SFT\'s (weights, AdamW\'s moments and whatever the method keeps).', { claim: 3 }),

  fig(NB5, 'kept_by_layer', 'Kept fraction per layer over training for GMT with one global quantile (k = 0.3), first seed. Layers compete for the 70% that is kept, so a layer that drifts away from 0.7 gets more or less of the update.', { supports: INSIDE }),
  fig(NB5, 'kept_by_tensor', 'The same kept fractions per parameter tensor. It shows which tensors GMT leaves alone and which it always updates.', { supports: INSIDE }),
  fig(NB5, 'mask_stability', 'Overlap (Jaccard index) of each sampled mask with the one sampled 5 updates earlier, per method and seed, against the overlap two independent random masks have by chance. Above that level GMT\'s choices persist; below 1 they move.', { supports: INSIDE }),
  fig(NB5, 'drift_from_first_mask', 'Overlap of the mask at each update with the first update\'s mask; for GMT that first mask is exactly the one SIFT keeps fixed. The further GMT falls below 1, the more it differs from SIFT.', { supports: INSIDE }),
  tab(NB5, 'stability_table', 'Per run: mean overlap with the previous sampled mask, overlap with the first mask at the end, and test accuracy.', { supports: INSIDE }),

  fig(NB6, 'accuracy_by_variant', 'Test accuracy of every variant of GMT\'s rule, one panel per scope and maskUpdate setting, against the mask ratio with a line per selection signal (mean, 95% CI), beside SFT (dashed, its interval shaded) and random masking (dotted). The title names the device and mode, the subtitle the seeds per point.', { supports: ABLATION }),
  fig(NB6, 'paired_vs_sft', 'Each variant\'s accuracy minus SFT\'s on the same seeds (95% CI), in the accuracy figure\'s panels: scope and maskUpdate, the mask ratio along x, a line per signal. In fast mode the intervals are wide: the figure shows the machinery, not a finding.', { supports: ABLATION }),
  fig(NB6, 'update_time', 'Time per update of each variant on the device the runs trained on, mean over seeds with 95% CI, in the accuracy figure\'s panels (scope and maskUpdate; the mask ratio along x; a line per signal).', { supports: ABLATION }),
  fig(NB6, 'update_memory', 'Tensor memory of one update per variant, counted right after the optimizer step when Γ, the masks and AdamW\'s moments are all alive, in the accuracy figure\'s panels.', { supports: ABLATION }),
  fig(NB6, 'val_loss_by_variant', 'Validation loss each variant reached at the end, mean with 95% CI, in the accuracy figure\'s panels; in fast mode the more telling outcome, since runs that short score little on the test problems.', { supports: ABLATION }),
  fig(NB6, 'questions_answers', 'The questions written before the runs, one row each: the paired difference A − B in accuracy on the same seeds with its 95% CI, coloured by the answer it gives (an interval clear of 0 answers; one across 0 finds no difference, and its width is what the runs could have missed).', { supports: ABLATION }),
  tab(NB6, 'accuracy_table', 'Test accuracy per task and variant: seeds, mean, SD and 95% CI.', { supports: ABLATION }),
  tab(NB6, 'paired_table', 'Each variant minus SFT on the same seeds: mean difference, 95% CI, p and Holm-adjusted p.', { supports: ABLATION }),
  tab(NB6, 'update_time_table', 'Time per update per variant: seeds, mean, SD and 95% CI in ms.', { supports: ABLATION }),
  tab(NB6, 'update_memory_table', 'Tensor memory of an update per variant (MiB).', { supports: ABLATION }),
  tab(NB6, 'val_loss_table', 'Validation loss at the end per variant: seeds, mean, SD and 95% CI.', { supports: ABLATION }),
  tab(NB6, 'questions_table', 'The questions written before the runs, one per factor of GMT\'s rule, each answered by the paired 95% CI of the accuracy difference between two cells on the same seeds.', { supports: ABLATION }),
  fig(NB7, 'pilot_sd', 'The SD of GMT − SFT on the same seed for every pilot candidate and task. The seeds an interval of a given width needs grow with its square, so lower bars mean cheaper precision.', { supports: PILOT }),
  fig(NB7, 'pilot_seeds', 'Every pilot seed\'s GMT − SFT accuracy difference, per candidate and task. It shows whether a candidate\'s SD comes from an even spread or from a few seeds far from the rest.', { supports: PILOT }),
  fig(NB7, 'pilot_cost', 'Each pilot candidate\'s cost of a given precision, Σ SD² × minutes per run, with the rule\'s median minutes and with the 10th-percentile minutes. The rule picks the lowest among candidates whose SFT converged.', { supports: PILOT }),
  tab(NB7, 'pilot_tasks', 'The pilot per candidate and task: pairs, mean accuracies, GMT − SFT mean and SD, failed seeds, SFT\'s late validation-loss fall and minutes per run.', { supports: PILOT }),
  tab(NB7, 'pilot_candidates', 'The pilot per candidate: whether SFT converged, its cost, and the seeds it implies for claims 1 and 2.', { supports: PILOT }),
  fig(NB7, 'paired_vs_sft', 'Under protocol 2, GMT\'s and each method\'s test accuracy minus SFT\'s on the same seeds, per task, with 95% CI. Claim 1 is reproduced on a task where GMT\'s interval lies above 0.', { supports: P2 }),
  fig(NB7, 'accuracy_vs_ratio_math', 'Under protocol 2, test accuracy on math against the mask ratio k at tensor and global scope, with 95% bands and SFT\'s level. A flat curve over k = 0.1–0.5 is what claim 2 says.', { supports: P2 }),
  fig(NB7, 'accuracy_vs_ratio_code', 'Under protocol 2, test accuracy on code against the mask ratio k at tensor and global scope, with 95% bands and SFT\'s level.', { supports: P2 }),
  fig(NB7, 'forgetting_facts', 'Under protocol 2, the base model\'s arithmetic facts still answered after fine-tuning, per task and method, mean with 95% CI.', { supports: P2 }),
  tab(NB7, 'claim1', 'Claim 1 under protocol 2 per task and stage: GMT − SFT with its t and bootstrap intervals, the t and Wilcoxon p, failed seeds per method and the verdict; the row on both stages\' seeds decides, stage 1\'s stands beside it.', { supports: P2 }),
  tab(NB7, 'claim1b', 'Claim 1b under protocol 2 per task and stage: the test answers\' mean per-token loss of SFT and GMT, their paired difference with 95% CI and the verdict.', { supports: P2 }),
  tab(NB7, 'claim1_stage2_plan', 'Claim 1\'s second stage: per task, stage 1\'s seeds, paired SD and minutes per run, and the seeds the rule re-estimates from that SD (±1.5 points, or ±2.5 where the runs would not fit half an hour), with the half-width they predict.', { supports: P2 }),
  tab(NB7, 'claim2_checks', 'Claim 2 under protocol 2: for each task, scope and k, the paired difference to k = 0.3 with its 90% CI and the TOST verdict at ±3 points.', { supports: P2 }),
  tab(NB7, 'forgetting', 'Forgetting probes under protocol 2: facts and general-text loss per task and method, mean over seeds with 95% CI, and the base model\'s.', { supports: P2 }),
  fig(NB7, 'size_trend', 'Beyond the paper: GMT − SFT test accuracy on the same seeds at the nano and micro bases under protocol 2, per task, with 95% CI. CLAIMS.md asks whether the gain changes with size.', { supports: SIZE }),
  tab(NB7, 'size_trend_table', 'Claim 1 at each model size under protocol 2: SFT and GMT accuracy, their paired difference with 95% CI and claim 1\'s rule, per task and base.', { supports: SIZE }),
  tab(NB7, 'size_change', 'Whether GMT\'s gain depends on model size: the nano gain minus the micro gain per task with its Welch 95% CI, p and the rule\'s answer.', { supports: SIZE }),
];

/** The catalog entry of `notebook`'s `name` of that kind, if any. */
export function catalogEntry(notebook: string, name: string, kind: CatalogEntry['kind']): CatalogEntry | undefined {
  return FINDINGS_CATALOG.find((e) => e.notebook === notebook && e.name === name && e.kind === kind);
}

/** The notebook's gallery information, if it saves evidence. */
export function notebookInfo(notebook: string): NotebookInfo | undefined {
  return FINDINGS_NOTEBOOKS.find((n) => n.id === notebook);
}

/** The heading of a claim in CLAIMS.md, e.g. `Claim 1: GMT beats vanilla fine-tuning`. */
export function claimHeading(claim: ClaimId): string {
  return `Claim ${claim}: ${CLAIM_TITLES[claim]}`;
}

/** The anchor a code host gives a Markdown heading (GitHub's rule: lower case, punctuation dropped, spaces to `-`). */
export function markdownAnchor(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}
