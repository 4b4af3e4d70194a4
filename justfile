# projected_grpo recipes. Arms carry a `# H:` line: the hypothesis that run tests.
# Runs write to out/runs/<run>/ (step_NNNN.jsonl.gz, metrics.jsonl, eval.jsonl).

set shell := ["bash", "-euo", "pipefail", "-c"]
py := "python3"
vhack := "out/vhack/organism_cpu_svd.safetensors"
vhack_own := "out/vhack/organism_cpu_svd_own.safetensors"
pairs := "data/pairs/hack_pairs.md#organism"

default:
    @just --list --unsorted

# install apt (bubblewrap, task-spooler) and pip (torch CPU build, this package) dependencies
setup:
    bash scripts/setup.sh

# every verify gate (BEARTYPE=1) and the tiny end-to-end pipeline; ends with 'N passed, N failed'
smoke *filters:
    {{py}} scripts/smoke.py {{filters}}

# every gate on its whole matrix (the fast tier's covering subsets extended; grading-under-load gates alone); CI runs it after smoke
smoke-full *filters:
    PGRPO_SMOKE_FULL=1 {{py}} scripts/smoke.py {{filters}}

# the main experiment on the CPU organism: vanilla, erase, route, route-subset, scorda-absorb (arms.MAIN), 3 seeds each
main seeds="0,1,2" steps="40" *args:
    {{py}} scripts/main_experiment.py --seeds {{seeds}} --steps {{steps}} {{args}}

# the headline: every arm of issue 13 (arms.HEADLINE) x 5 seeds on one device, one run per core, 50 min budget; writes docs/results/<date>_headline/
headline seeds="0,1,2,3,4" steps="40" *args:
    {{py}} scripts/headline.py --seeds {{seeds}} --steps {{steps}} {{args}}

# the pre-registered decisive table (docs/prereg/): every registered arm x the registered seeds on one organism, 80 steps, eval seed 2029; resumes
# from finished runs (on the GPU machine, in calls of at most 10 min: --budget-min 9); the analysis: results.py --decisive
decisive model="organism:cpu" seeds="110-129" *args:
    {{py}} scripts/decisive.py --model {{model}} --seeds {{seeds}} {{args}}

# H: vanilla GRPO raises the hinted strict hack rate of every mechanism well above base within 60 steps; the RL baseline (no loophole in training prompts) does not
# on the pinned CPU organism (data/organisms), runs vanilla and rl-baseline side by side, prints base/final rates and wall times
emergence seeds="0" steps="60" *args:
    {{py}} scripts/emergence.py --seeds {{seeds}} --steps {{steps}} {{args}}

# build an organism (tiny | cpu | gpu) under out/organism/ and print its weights sha256; never replaces the pinned ones
# (organism:cpu and organism:tiny load data/organisms/; organism:gpu loads a build whose hash is the pinned one)
organism size="cpu" seed="0" *args:
    {{py}} -m projected_grpo.organism.build --size {{size}} --seed {{seed}} {{args}}

# grade completions: just grade P.jsonl C.jsonl O.jsonl
grade problems completions out:
    {{py}} -m projected_grpo.env.grade --problems {{problems}} --completions {{completions}} --out {{out}}

# extract v_hack (v_grad, and v_act) from hand-authored pairs for the CPU organism
vhack pairs=pairs out=vhack *args:
    {{py}} scripts/extract_vhack_grad.py --pairs '{{pairs}}' --out {{out}} {{args}}

# v_hack for the own-quarantine adapter (route, route-random)
vhack-own pairs=pairs out=vhack_own *args:
    {{py}} scripts/extract_vhack_grad.py --pairs '{{pairs}}' --quarantine own --out {{out}} {{args}}

# the direction file of a registry kind (arms.VHACK_FILES: shared, own, placebo, placebo-own, lora-own, grpo-own, trusted) for a model, where arms.vhack_path puts it
vhack-kind kind model="organism:cpu":
    {{py}} scripts/extract_vhack_grad.py $({{py}} -c 'import sys; from projected_grpo.method import arms; print(" ".join(arms.vhack_extract_args(sys.argv[1], sys.argv[2])))' {{kind}} {{model}})

# ---- arms (one run each; pass --steps N etc. through args) -------------------------------------
# the v_hack files an arm needs: just vhack, just vhack-own, just vhack-placebo, just vhack-placebo-own; route-lora,
# route-grpo-vhack, tdga-r1 and tdga-r5: just vhack-kind lora-own, grpo-own, trusted (the drivers extract them all)

# placebo-pair v_grad for the shared adapter (erase-placebo)
vhack-placebo:
    {{py}} scripts/extract_vhack_grad.py --pairs 'data/pairs/pair_diagnostics.md#placebo' --out out/vhack/organism_cpu_svd_placebo.safetensors

# placebo-pair v_grad for the own-quarantine adapter (route-placebo)
vhack-placebo-own:
    {{py}} scripts/extract_vhack_grad.py --pairs 'data/pairs/pair_diagnostics.md#placebo' --quarantine own --out out/vhack/organism_cpu_svd_own_placebo.safetensors

# any registry arm: just arm scorda-absorb 3 --steps 60
arm name seed="0" *args:
    {{py}} scripts/train.py --arm {{name}} --seed {{seed}} --run {{name}}_s{{seed}} {{args}}

# ---- arms: generated from src/projected_grpo/method/arms.py by scripts/gen_arm_recipes.py; do not edit ----

# H: with the loophole announced, GRPO raises the strict hack rate from the base rate to a majority
vanilla seed="0" *args:
    {{py}} scripts/train.py --arm vanilla --seed {{seed}} --run vanilla_s{{seed}} {{args}}

# H: without a loophole in the prompts the hack rate stays near the base rate (RL baseline)
rl-baseline seed="0" *args:
    {{py}} scripts/train.py --arm rl-baseline --seed {{seed}} --run rl-baseline_s{{seed}} {{args}}

# H: projecting v_hack out of the deployed block's gradient lowers the hack rate relative to vanilla
erase seed="0" *args:
    {{py}} scripts/train.py --arm erase --seed {{seed}} --run erase_s{{seed}} {{args}}

# H: projecting v_hack out of the deployed block's realised AdamW step lowers the hack rate relative to vanilla
erase-update seed="0" *args:
    {{py}} scripts/train.py --arm erase-update --seed {{seed}} --run erase-update_s{{seed}} {{args}}

# H: a random direction of matched shape erased the same way does not lower the hack rate (direction matters)
erase-random seed="0" *args:
    {{py}} scripts/train.py --arm erase-random --seed {{seed}} --run erase-random_s{{seed}} {{args}}

# H: erase with v_hack from placebo pairs (a contrast unrelated to hacking) does not lower the hack rate
erase-placebo seed="0" *args:
    {{py}} scripts/train.py --arm erase-placebo --seed {{seed}} --run erase-placebo_s{{seed}} {{args}}

# H: routing the top-scoring rollouts (cosine to v_grad) to an own-basis quarantine lowers the deployed hack rate
route seed="0" *args:
    {{py}} scripts/train.py --arm route --seed {{seed}} --run route_s{{seed}} {{args}}

# H: routing the top-scoring rollouts by cosine to -v_grad (the sign control) does not lower the deployed hack rate as route does (the hack-ward sign of v_grad matters)
route-negated seed="0" *args:
    {{py}} scripts/train.py --arm route-negated --seed {{seed}} --run route-negated_s{{seed}} {{args}}

# H: routing the same fraction per step by a random direction does not lower the deployed hack rate (no shrinkage effect)
route-random seed="0" *args:
    {{py}} scripts/train.py --arm route-random --seed {{seed}} --run route-random_s{{seed}} {{args}}

# H: routing the same fraction per step by the negation of route-random's direction (same --direction-seed) lowers the deployed hack rate as much as route-random does (a direction that knows nothing has no sign)
route-random-negated seed="0" *args:
    {{py}} scripts/train.py --arm route-random-negated --seed {{seed}} --run route-random-negated_s{{seed}} {{args}}

# H: routing a uniformly random subset at the route run's per-step fraction lowers the deployed solve rate as much as route does (the collapse is "how many", not "which direction")
route-subset seed="0" *args:
    {{py}} scripts/train.py --arm route-subset --seed {{seed}} --run route-subset_s{{seed}} {{args}}

# H: a random subset that also matches the route run's per-step positive-advantage share among the routed reproduces route's deployed hack and solve rates (the effect is "how many" and "which advantage sign")
route-subset-signed seed="0" *args:
    {{py}} scripts/train.py --arm route-subset-signed --seed {{seed}} --run route-subset-signed_s{{seed}} {{args}}

# H: a random subset with the route run's per-step routed count in each (advantage sign, completion-length tercile) cell reproduces route's deployed hack and solve rates (the effect is "how many", "which sign" and "how long", not the direction)
route-subset-matched seed="0" *args:
    {{py}} scripts/train.py --arm route-subset-matched --seed {{seed}} --run route-subset-matched_s{{seed}} {{args}}

# H: routing by v_grad from placebo pairs (a contrast unrelated to hacking) lowers the deployed hack rate less than route (direction matters)
route-placebo seed="0" *args:
    {{py}} scripts/train.py --arm route-placebo --seed {{seed}} --run route-placebo_s{{seed}} {{args}}

# H: two trained blocks without routing hack like vanilla (parameter count alone does not suppress hacking)
capacity seed="0" *args:
    {{py}} scripts/train.py --arm capacity --seed {{seed}} --run capacity_s{{seed}} {{args}}

# H: training both blocks on every rollout and ablating the quarantine removes part of the update (absorb-only control)
absorb seed="0" *args:
    {{py}} scripts/train.py --arm absorb --seed {{seed}} --run absorb_s{{seed}} {{args}}

# H: a quarantine block seeded with the pairs' signed activation contrast, both blocks trained on every rollout, absorbs hacking: deployment ablation lowers the deployed hack rate (held-out mechanisms too) more than absorb and scorda-reverse, at a small cost in no-hint solve
scorda-absorb seed="0" *args:
    {{py}} scripts/train.py --arm scorda-absorb --seed {{seed}} --run scorda-absorb_s{{seed}} {{args}}

# H: the same quarantine seeded with the placebo pairs' activation contrast (a contrast unrelated to hacking; otherwise scorda-absorb) lowers the deployed hack rate less than scorda-absorb (the seed's direction matters)
scorda-placebo seed="0" *args:
    {{py}} scripts/train.py --arm scorda-placebo --seed {{seed}} --run scorda-placebo_s{{seed}} {{args}}

# H: the same seed placed in the deployed block does not lower the deployed hack rate (directional control of scorda-absorb)
scorda-reverse seed="0" *args:
    {{py}} scripts/train.py --arm scorda-reverse --seed {{seed}} --run scorda-reverse_s{{seed}} {{args}}

# H: lowering each rollout's advantage in proportion to its activation score against v_act from the pairs (oracle-free peer baseline in the style of Rebound) lowers the hack rate relative to vanilla
rebound-adv seed="0" *args:
    {{py}} scripts/train.py --arm rebound-adv --seed {{seed}} --run rebound-adv_s{{seed}} {{args}}

# H: Rebound's Advantage Modification in its published form (the activation score against v_act z-scored within each group, only above-average rollouts penalised, multiplicatively, alpha 2; oracle-free peer baseline) lowers the hack rate relative to vanilla
rebound seed="0" *args:
    {{py}} scripts/train.py --arm rebound --seed {{seed}} --run rebound_s{{seed}} {{args}}

# H: keeping only the part of each deployed-block gradient inside the rank-1 span of the pairs' clean completions' gradients (TDGA-style trusted-subspace projection) lowers the hack rate relative to vanilla
tdga-r1 seed="0" *args:
    {{py}} scripts/train.py --arm tdga-r1 --seed {{seed}} --run tdga-r1_s{{seed}} {{args}}

# H: the same trusted-subspace projection onto the rank-5 span of the clean completions' gradients lowers the hack rate relative to vanilla, with less cost in no-hint solve than rank 1
tdga-r5 seed="0" *args:
    {{py}} scripts/train.py --arm tdga-r5 --seed {{seed}} --run tdga-r5_s{{seed}} {{args}}

# H: routing the top-scoring rollouts by cosine to a v_grad extracted for the LoRA adapter (rank 8, its own quarantine B_hack) lowers the deployed hack rate as route does with the SVD adapter (R6: not an artefact of the SVD basis)
route-lora seed="0" *args:
    {{py}} scripts/train.py --arm route-lora --seed {{seed}} --run route-lora_s{{seed}} {{args}}

# H: routing by a v_grad extracted with the GRPO-contrastive loss (advantage +1 on the hack, -1 on the clean completion, summed over tokens as the training loss is) lowers the deployed hack rate at least as much as route's NLL v_grad (R7)
route-grpo-vhack seed="0" *args:
    {{py}} scripts/train.py --arm route-grpo-vhack --seed {{seed}} --run route-grpo-vhack_s{{seed}} {{args}}

# H: (UPPER BOUND, reads ground-truth labels) routing true hacks to the quarantine keeps the deployed model clean
oracle-route seed="0" *args:
    {{py}} scripts/train.py --arm oracle-route --seed {{seed}} --run oracle-route_s{{seed}} {{args}}

# H: (ORACLE peer baseline, reads labels) a ground-truth monitor of accuracy 1.0 with reward penalty prevents hacking
gt-penalty seed="0" *args:
    {{py}} scripts/train.py --arm gt-penalty --seed {{seed}} --run gt-penalty_s{{seed}} {{args}}

# H: (ORACLE peer baseline, reads labels) a ground-truth monitor of accuracy 0.9 with reward penalty prevents hacking less reliably than at accuracy 1.0
gt-penalty-acc90 seed="0" *args:
    {{py}} scripts/train.py --arm gt-penalty-acc90 --seed {{seed}} --run gt-penalty-acc90_s{{seed}} {{args}}

# H: (ORACLE peer baseline, reads labels) screening flagged rollouts out of the batch prevents hacking
gt-screen seed="0" *args:
    {{py}} scripts/train.py --arm gt-screen --seed {{seed}} --run gt-screen_s{{seed}} {{args}}

# ---- end of generated arms ----

# ---- results -------------------------------------------------------------------------------------

# table of arms (mean, 95% CI over seeds, paired difference from vanilla) and plots
results *args:
    {{py}} scripts/results.py {{args}}

# AUROC / precision-at-threshold of the routing score for a run
diag-pinning run:
    {{py}} scripts/diag_pinning.py {{run}}

# ---- queue (pueue when installed, task-spooler otherwise) ----------------------------------------

# queue a recipe: WHY='...' RESOLVE='...' just queue vanilla 1 --steps 60
queue recipe *args:
    bash scripts/queue.sh add {{recipe}} {{args}}

queue-status:
    bash scripts/queue.sh status

queue-follow id:
    bash scripts/queue.sh follow {{id}}

# queue arms x seeds, e.g. WHY=... RESOLVE=... just sweep "vanilla erase route" "0 1 2"
sweep arms seeds *args:
    for s in {{seeds}}; do for a in {{arms}}; do bash scripts/queue.sh add $a $s {{args}}; done; done

# GPU smoke (needs CUDA, bf16): tiny random Qwen3, v_hack extraction, every arm 2 steps on svd and lora
smoke-gpu *args:
    {{py}} scripts/smoke_gpu.py {{args}}

# H: (R5) with mixed-policy groups (half vanilla-trained teacher, half the student) GRPO raises the student's own strict hack rate over the steps, and erasing v_hack from the deployed block's gradient keeps it flatter; teacher-token importance ratios mostly inside the clip interval (else both arms look alike)
probe-grpo teacher="out/runs/vanilla_s0" vh=vhack steps="20" seed="41" *args:
    {{py}} scripts/probe_grpo.py --teacher {{teacher}} --vhack {{vh}} --steps {{steps}} --seed {{seed}} --out out/probe_grpo {{args}}

# the R5 probe's plumbing on the tiny organism (its own 3-step teacher; < 1 min)
probe-grpo-small:
    {{py}} scripts/probe_grpo.py --small --out out/probe_grpo_small

# ---- distillation cosine probe (docs/probe_distill.md) -------------------------------------------

probe := "out/probe_distill"

# H: the organism after a vanilla GRPO run (the hacking teacher, sampled under deployment ablation) hacks on >= 30% of hinted train rollouts (T1)
probe-teacher-pool n="20" teacher="out/runs/vanilla_s0" *args:
    {{py}} scripts/probe_distill.py teacher-pool --teacher {{teacher}} --n-problems {{n}} --group 8 --out {{probe}}/teacher_pool {{args}}

# H: distilling the teacher pool with mean NLL gives every rollout a finite cosine with v_hack (T2), and pure hacks align with v_hack more than hack-and-correct rollouts (T4)
probe-vanilla-replay n="20" seed="41" vh=vhack *args:
    {{py}} scripts/probe_distill.py replay --pool {{probe}}/teacher_pool --vhack {{vh}} --mode vanilla --max-steps {{n}} --seed {{seed}} --out {{probe}}/vanilla_seed{{seed}} {{args}}

# H: projecting v_hack out of the batch gradient (one-sided, per module) makes the student's realised parameter steps less hack-ward along v_hack than the vanilla replay's on >= 80% of steps, and fires on most modules (T3)
probe-projected-replay n="20" seed="41" vh=vhack *args:
    {{py}} scripts/probe_distill.py replay --pool {{probe}}/teacher_pool --vhack {{vh}} --mode projected --max-steps {{n}} --seed {{seed}} --out {{probe}}/projected_seed{{seed}} {{args}}

# H: the probe's gates T1-T4 on the pool and the two replays (a measurement: exits 0 when gates fail)
probe-uat seed="41" *args:
    {{py}} scripts/probe_uat.py --pool {{probe}}/teacher_pool --vanilla {{probe}}/vanilla_seed{{seed}} --projected {{probe}}/projected_seed{{seed}} {{args}}

# H: T4's separation is specific to v_hack: a random direction and the placebo-pair direction separate pure hacks from hack-and-correct less; the oracle (DIAGNOSTIC UPPER BOUND, reads labels) bounds it from above; R6: a LoRA-basis v_hack (rank 8) separates comparably; R7: a GRPO-contrastive v_hack separates at least as well as the NLL one
probe-controls teacher="out/runs/vanilla_s0" model="organism:cpu" seed="41" n="20":
    test -d {{probe}}/teacher_pool || {{py}} scripts/probe_distill.py teacher-pool --teacher {{teacher}} --n-problems {{n}} --group 8 --out {{probe}}/teacher_pool
    {{py}} scripts/extract_vhack_grad.py --pairs '{{pairs}}' --model {{model}} --out {{probe}}/vhack_nll_svd.safetensors
    {{py}} scripts/probe_distill.py random-vhack --like {{probe}}/vhack_nll_svd.safetensors --seed {{seed}} --out {{probe}}/vhack_random_svd.safetensors
    {{py}} scripts/extract_vhack_grad.py --pairs 'data/pairs/pair_diagnostics.md#placebo' --model {{model}} --out {{probe}}/vhack_placebo_svd.safetensors
    {{py}} scripts/probe_distill.py oracle-vhack --pool {{probe}}/teacher_pool --model {{model}} --out {{probe}}/vhack_oracle_DIAGNOSTIC_UPPER_BOUND_svd.safetensors
    {{py}} scripts/extract_vhack_grad.py --pairs '{{pairs}}' --model {{model}} --adapter lora --rank 8 --out {{probe}}/vhack_nll_lora8.safetensors
    {{py}} scripts/extract_vhack_grad.py --pairs '{{pairs}}' --model {{model}} --loss grpo --out {{probe}}/vhack_grpo_svd.safetensors
    for c in nll_svd random_svd placebo_svd oracle_DIAGNOSTIC_UPPER_BOUND_svd nll_lora8 grpo_svd; do {{py}} scripts/probe_distill.py replay --pool {{probe}}/teacher_pool --vhack {{probe}}/vhack_$c.safetensors --mode vanilla --seed {{seed}} --out {{probe}}/control_$c; done
    {{py}} scripts/probe_distill.py replay --pool {{probe}}/teacher_pool --vhack {{probe}}/vhack_nll_svd.safetensors --mode projected --seed {{seed}} --out {{probe}}/control_nll_svd_projected
    {{py}} scripts/probe_distill.py replay --pool {{probe}}/teacher_pool --vhack {{probe}}/vhack_nll_lora8.safetensors --mode projected --seed {{seed}} --out {{probe}}/control_nll_lora8_projected
    {{py}} scripts/probe_uat.py --pool {{probe}}/teacher_pool --vanilla {{probe}}/control_nll_svd --projected {{probe}}/control_nll_svd_projected --json {{probe}}/probe_controls.json --compare nll_svd={{probe}}/control_nll_svd random_svd={{probe}}/control_random_svd placebo_svd={{probe}}/control_placebo_svd oracle_DIAGNOSTIC_UPPER_BOUND={{probe}}/control_oracle_DIAGNOSTIC_UPPER_BOUND_svd R6_lora8={{probe}}/control_nll_lora8 R7_grpo_loss={{probe}}/control_grpo_svd
    {{py}} scripts/probe_uat.py --pool {{probe}}/teacher_pool --vanilla {{probe}}/control_nll_lora8 --projected {{probe}}/control_nll_lora8_projected --json {{probe}}/probe_uat_R6_lora8.json
