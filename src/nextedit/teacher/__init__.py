"""Teacher distillation: prompt, output parsing, checks, judge, repair, distill, privacy scrubbing, cost.

Stages (`nextedit run NAME`): teacher, checks, judge, repair, distill; `nextedit teacher` runs the
chain; predictor `teacher:SPEC` for `nextedit predict` (see docs/teacher.md).
Pure parts: `prompt.build_prompt`, `parse.parse_output` / `parse.region_patch`,
`checks.check_prediction`, `distill.choose_target`, `scrub.Scrubber`, `cost.estimate_cost`.
"""
