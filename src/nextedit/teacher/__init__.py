"""Teacher distillation: prompt, output parsing, checks, judge, repair, distill and privacy scrubbing.

Stages (`nextedit run NAME`): teacher, checks, judge, repair, distill (see docs/teacher.md).
Pure parts: `prompt.build_prompt`, `parse.parse_output` / `parse.region_patch`,
`checks.check_prediction`, `distill.choose_target`, `scrub.Scrubber`.
"""
