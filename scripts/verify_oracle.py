#!/usr/bin/env python3
"""Build the labelled final-answer cases of cotforge's verifier, with math-verify's verdicts.

Usage: python3 scripts/verify_oracle.py [--out tests/data/verify/cases.jsonl]

The script creates (or reuses) the virtual environment /var/cache/cotforge-venv, installs
`math-verify` there when missing, re-executes itself inside it, and writes one JSON object per
line:

    {"id", "category", "gold", "prediction", "expected", "math_verify", ["question"]}

`expected` is the hand label (is the prediction's final answer right?); `math_verify` is
`math_verify.verify(parse(gold), parse(prediction))`. Order and content are deterministic: the
cases are the literal tables below, numbered per category.

How golds are handed to math-verify. A gold that already carries its own answer markup (a
`\\boxed{}`, `$...$`, "answer is", `####`, `</think>`) is parsed as is, like a full solution; a
bare gold is wrapped as `\\boxed{gold}`, which math-verify's LaTeX extraction reads as the
reference answer. Predictions are parsed as is with the default extraction config.
Multiple-choice cases add `StringExtractionConfig(strings=("A", ..., "E"))` before the default
LaTeX and expression configs for both sides, as math-verify documents for letter answers; it has
no notion of option texts, so cases with a `question` are judged by letters only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

VENV = "/var/cache/cotforge-venv"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_venv() -> None:
    """Re-exec inside the venv, creating it and installing math-verify when needed."""
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
        if not os.path.exists(py):
            subprocess.check_call([sys.executable, "-m", "venv", VENV])
        os.execv(py, [py, os.path.abspath(__file__), *sys.argv[1:]])
    try:
        import math_verify  # noqa: F401
    except ImportError:
        if os.environ.get("COTFORGE_ORACLE_INSTALLED"):
            raise  # installed once already and still missing: give up
        subprocess.check_call([py, "-m", "pip", "install", "--quiet", "math-verify"])
        os.environ["COTFORGE_ORACLE_INSTALLED"] = "1"
        os.execv(py, [py, os.path.abspath(__file__), *sys.argv[1:]])


T = True
F = False

# (category, gold, prediction, expected[, question])
CASES: list[tuple] = []


def add(category: str, rows: list[tuple]) -> None:
    for r in rows:
        CASES.append((category, *r))


THINK = "<think>\nLet me work through this step by step. First compute the pieces, then combine.\n</think>\n"

add("integer", [
    ("42", "42", T),
    ("42", "\\boxed{42}", T),
    ("42", "The answer is 42.", T),
    ("42", "$42$", T),
    ("42", "Therefore, the final answer is $\\boxed{42}$.", T),
    ("42", "\\boxed{24}", F),
    ("42", "The answer is 41.", F),
    ("7", "We add 3 and 4 to get \\boxed{7}.", T),
    ("7", "\\boxed{7.0}", T),
    ("7", "\\boxed{07}", T),
    ("0", "\\boxed{0}", T),
    ("0", "\\boxed{1}", F),
    ("100", "\\boxed{100}", T),
    ("100", "\\boxed{10}", F),
    ("1000000", "\\boxed{1000001}", F),
    ("12345678901234567890", "\\boxed{12345678901234567890}", T),
    ("12345678901234567890", "\\boxed{12345678901234567891}", F),
    ("2024", "So the year is \\boxed{2024}.", T),
    ("15", "#### 15", T),
    ("15", "The total is 5 + 10 = 15.\n#### 15", T),
    ("8", "\\boxed{8}\\,", T),
    ("36", "The area is $6 \\times 6 = 36$.", T),
    ("36", "\\boxed{6^2}", T),
    ("3", "\\boxed{\\text{3}}", T),
])

add("decimal", [
    ("0.5", "\\boxed{.5}", T),
    ("0.5", "\\boxed{0.50}", T),
    ("3.14", "\\boxed{3.140}", T),
    ("2.5", "\\boxed{2.50}", T),
    ("1.0", "\\boxed{1}", T),
    ("3.14159", "\\boxed{3.14}", F),
    ("0.333", "\\boxed{\\frac{1}{3}}", F),
    ("0.125", "\\boxed{\\frac{1}{8}}", T),
    ("2.75", "The answer is 2.75", T),
    ("2.75", "\\boxed{2.57}", F),
    ("0.1", "\\boxed{0.01}", F),
    ("12.5", "\\boxed{12.5}", T),
    ("-0.25", "\\boxed{-\\frac{1}{4}}", T),
    ("1.5", "\\boxed{\\frac{3}{2}}", T),
    ("0.75", "\\boxed{75\\%}", T),
])

add("fraction", [
    ("\\frac{1}{2}", "\\boxed{0.5}", T),
    ("\\frac{1}{2}", "\\boxed{\\frac12}", T),
    ("\\frac{1}{2}", "\\boxed{1/2}", T),
    ("\\dfrac{3}{4}", "\\boxed{\\frac{3}{4}}", T),
    ("\\dfrac{3}{4}", "\\boxed{3/4}", T),
    ("\\tfrac{2}{3}", "\\boxed{\\frac{2}{3}}", T),
    ("\\frac{2}{4}", "\\boxed{\\frac{1}{2}}", T),
    ("\\frac{1}{3}", "\\boxed{0.33}", F),
    ("\\frac{1}{3}", "\\boxed{\\frac{1}{4}}", F),
    ("-\\frac{1}{2}", "\\boxed{\\frac{-1}{2}}", T),
    ("-\\frac{1}{2}", "\\boxed{\\frac{1}{2}}", F),
    ("\\frac{7}{2}", "\\boxed{3.5}", T),
    ("\\frac{7}{2}", "\\boxed{3\\frac{1}{2}}", T),
    ("\\frac{5}{8}", "The answer is $\\dfrac{5}{8}$.", T),
    ("\\frac{10}{3}", "\\boxed{\\frac{10}{3}}", T),
    ("\\frac{10}{3}", "\\boxed{\\frac{3}{10}}", F),
    ("\\frac{1}{6}", "\\boxed{\\dfrac{1}{6}}", T),
    ("\\frac{9}{4}", "\\boxed{2.25}", T),
    ("\\frac{22}{7}", "\\boxed{\\pi}", F),
    ("\\frac{1}{100}", "\\boxed{0.01}", T),
    ("3/5", "\\boxed{\\frac{3}{5}}", T),
    ("\\frac34", "\\boxed{0.75}", T),
])

add("percent", [
    ("25\\%", "\\boxed{25\\%}", T),
    ("25\\%", "\\boxed{25%}", T),
    ("25\\%", "\\boxed{0.25}", T),
    ("25\\%", "\\boxed{25}", T),
    ("50\\%", "\\boxed{\\frac{1}{2}}", T),
    ("12.5\\%", "\\boxed{0.125}", T),
    ("25\\%", "\\boxed{20\\%}", F),
    ("5\\%", "\\boxed{0.5}", F),
    ("40", "\\boxed{40\\%}", T),
    ("0.4", "\\boxed{40\\%}", T),
    ("0.4", "\\boxed{4\\%}", F),
    ("75\\%", "The answer is 75%.", T),
    ("100\\%", "\\boxed{1}", T),
    ("30\\%", "\\boxed{30 \\text{ percent}}", T),
    ("60\\%", "\\boxed{0.6}", T),
])

add("units", [
    ("12", "\\boxed{12 \\text{ cm}}", T),
    ("12", "\\boxed{12\\text{ cm}^2}", T),
    ("12", "\\boxed{12 cm}", T),
    ("12", "The answer is 12 apples.", T),
    ("12 \\text{ cm}", "\\boxed{12}", T),
    ("5", "\\boxed{5 \\mathrm{kg}}", T),
    ("12", "\\boxed{13 \\text{ cm}}", F),
    ("5", "\\boxed{\\$5}", T),
    ("5", "\\boxed{5 \\text{ dollars}}", T),
    ("18", "\\boxed{18 \\text{ square units}}", T),
    ("60", "\\boxed{60 \\text{ mph}}", T),
    ("3.5", "\\boxed{3.5 \\text{ hours}}", T),
    ("20", "\\boxed{20 \\text{ m/s}}", T),
    ("20", "\\boxed{25 \\text{ m/s}}", F),
    ("9", "\\boxed{9\\text{ meters}}", T),
])

add("degrees", [
    ("30^\\circ", "\\boxed{30}", T),
    ("30", "\\boxed{30^\\circ}", T),
    ("30^\\circ", "\\boxed{30^{\\circ}}", T),
    ("45", "\\boxed{45°}", T),
    ("45", "\\boxed{45 \\text{ degrees}}", T),
    ("30^\\circ", "\\boxed{60^\\circ}", F),
    ("120^{\\circ}", "The measure is $\\boxed{120^\\circ}$.", T),
    ("90", "\\boxed{90^\\circ}", T),
    ("72", "\\boxed{27^\\circ}", F),
    ("135^\\circ", "\\boxed{135}", T),
])

add("thousands", [
    ("1000", "\\boxed{1,000}", T),
    ("1000", "\\boxed{1{,}000}", T),
    ("1234567", "\\boxed{1,234,567}", T),
    ("1,234,567", "\\boxed{1234567}", T),
    ("1000", "\\boxed{10,000}", F),
    ("25000", "The answer is 25,000.", T),
    ("3500", "\\boxed{\\$3,500}", T),
    ("1000000", "\\boxed{1{,}000{,}000}", T),
    ("4500", "\\boxed{4,050}", F),
    ("10000", "\\boxed{10\\,000}", T),
])

add("choice", [
    ("B", "\\boxed{B}", T),
    ("B", "(B)", T),
    ("B", "B.", T),
    ("B", "Answer: B", T),
    ("B", "The answer is B.", T),
    ("B", "\\boxed{C}", F),
    ("B", "Answer: C", F),
    ("C", "\\boxed{\\text{C}}", T),
    ("C", "\\boxed{(C)}", T),
    ("C", "\\boxed{\\textbf{(C)}}", T),
    ("D", "The final answer is D.", T),
    ("D", "The final answer is A.", F),
    ("A", "A", T),
    ("A", "A. 12", T),
    ("E", "\\boxed{E}", T),
    ("E", "\\boxed{D}", F),
    ("B", "The answer is (B).", T),
    ("B", "B) 12 apples", T),
    ("B", "\\boxed{15}", T, "How many? (A) 12 (B) 15 (C) 18 (D) 20"),
    ("15", "\\boxed{B}", T, "How many? (A) 12 (B) 15 (C) 18 (D) 20"),
    ("B", "\\boxed{12}", F, "How many? (A) 12 (B) 15 (C) 18 (D) 20"),
    ("C", "Answer: C", T, "Which colour?\nA. red\nB. blue\nC. green"),
    ("D", THINK + "Answer: D", T),
    ("A", THINK + "\\boxed{A}", T),
    ("C", "<think>Maybe it is (A). No, recheck.</think>\nThe answer is C.", T),
])

add("symbolic", [
    ("x^2+2x+1", "\\boxed{(x+1)^2}", T),
    ("2x", "\\boxed{x \\cdot 2}", T),
    ("\\frac{x}{2}", "\\boxed{0.5x}", T),
    ("x^2-1", "\\boxed{(x-1)(x+1)}", T),
    ("a+b", "\\boxed{b+a}", T),
    ("x^2", "\\boxed{x^3}", F),
    ("2x+1", "\\boxed{2x-1}", F),
    ("\\frac{1}{x+1}", "\\boxed{(x+1)^{-1}}", T),
    ("3x^2", "\\boxed{3x^{2}}", T),
    ("\\sin^2 x + \\cos^2 x", "\\boxed{1}", T),
    ("2\\sin x \\cos x", "\\boxed{\\sin(2x)}", T),
    ("e^{2x}", "\\boxed{(e^x)^2}", T),
    ("\\frac{x^2-1}{x-1}", "\\boxed{x+1}", T),
    ("x^2+y^2", "\\boxed{x^2-y^2}", F),
    ("\\frac{a}{b}", "\\boxed{\\frac{b}{a}}", F),
    ("4ab", "\\boxed{2a \\cdot 2b}", T),
    ("\\frac{n(n+1)}{2}", "\\boxed{\\frac{n^2+n}{2}}", T),
    ("\\log_2 8", "\\boxed{3}", T),
    ("\\ln(e^2)", "\\boxed{2}", T),
    ("e^{\\ln 5}", "\\boxed{5}", T),
    ("x^3-x", "\\boxed{x(x-1)(x+1)}", T),
    ("(x-2)^2", "\\boxed{x^2-4x+4}", T),
    ("(x-2)^2", "\\boxed{x^2-4}", F),
    ("\\frac{1}{2}mv^2", "\\boxed{\\frac{mv^2}{2}}", T),
    ("2^{10}", "\\boxed{1024}", T),
    ("10!", "\\boxed{3628800}", T),
    ("\\binom{5}{2}", "\\boxed{10}", T),
])

add("sqrt_pi", [
    ("2\\sqrt{2}", "\\boxed{\\sqrt{8}}", T),
    ("\\frac{\\sqrt{3}}{2}", "\\boxed{\\sqrt{3}/2}", T),
    ("\\frac{\\sqrt{2}}{2}", "\\boxed{\\frac{1}{\\sqrt{2}}}", T),
    ("2\\pi", "\\boxed{6.283185307}", T),
    ("\\frac{\\pi}{2}", "\\boxed{\\pi/2}", T),
    ("\\pi", "\\boxed{3.14}", F),
    ("\\sqrt{3}", "\\boxed{1.732}", F),
    ("4\\pi", "\\boxed{4 \\cdot \\pi}", T),
    ("\\sqrt[3]{8}", "\\boxed{2}", T),
    ("3\\sqrt{2}", "\\boxed{\\sqrt{18}}", T),
    ("3\\sqrt{2}", "\\boxed{2\\sqrt{3}}", F),
    ("\\sqrt{2}", "\\boxed{\\sqrt2}", T),
    ("16\\pi", "\\boxed{16\\pi \\text{ cm}^2}", T),
    ("\\frac{4}{3}\\pi", "\\boxed{\\frac{4\\pi}{3}}", T),
    ("\\pi r^2", "\\boxed{r^2 \\pi}", T),
    ("\\sqrt{5}", "\\boxed{5^{1/2}}", T),
    ("\\sqrt{5}", "\\boxed{\\sqrt{6}}", F),
    ("1+\\sqrt{2}", "\\boxed{\\sqrt{2}+1}", T),
    ("\\frac{3\\sqrt{3}}{4}", "\\boxed{\\frac{3}{4}\\sqrt{3}}", T),
    ("2\\pi", "\\boxed{2\\pi \\text{ radians}}", T),
    ("\\sqrt{2}", "√2", T),
    ("\\pi", "\\boxed{π}", T),
])

add("tuple", [
    ("(1, 2)", "\\boxed{(1,2)}", T),
    ("(1, 2)", "\\boxed{(2,1)}", F),
    ("(1, 2, 3)", "\\boxed{(1,2,3)}", T),
    ("(\\frac{1}{2}, 3)", "\\boxed{(0.5, 3)}", T),
    ("(1, 2)", "\\boxed{(1,2,3)}", F),
    ("(-1, 4)", "\\boxed{\\left(-1, 4\\right)}", T),
    ("(3, -2)", "The point is $(3, -2)$.", T),
    ("(3, -2)", "\\boxed{(-2, 3)}", F),
    ("(0, 0)", "\\boxed{(0,0)}", T),
    ("(2, \\sqrt{3})", "\\boxed{(2, 1.7320508075688772)}", T),
    ("(1, 1, 1)", "\\boxed{(1, 1, 2)}", F),
    ("(4, 5)", "\\boxed{\\left( 4, 5 \\right)}", T),
    ("(a, b) = (2, 3)", "\\boxed{(2,3)}", T),
    ("(6, 8)", "\\boxed{(6,8)}", T),
    ("(6, 8)", "\\boxed{(8,6)}", F),
])

add("set", [
    ("\\{1, 2\\}", "\\boxed{\\{2, 1\\}}", T),
    ("\\{1, 2, 3\\}", "\\boxed{\\{1, 2\\}}", F),
    ("1, 2", "\\boxed{2, 1}", T),
    ("\\{-1, 1\\}", "\\boxed{\\{1, -1\\}}", T),
    ("1 \\pm \\sqrt{2}", "\\boxed{1+\\sqrt{2}, 1-\\sqrt{2}}", T),
    ("-3, 2", "\\boxed{2, -3}", T),
    ("-3, 2", "\\boxed{3, -2}", F),
    ("\\{2, 4, 6\\}", "\\boxed{\\{6, 4, 2\\}}", T),
    ("\\{2, 4, 6\\}", "\\boxed{\\{2, 4, 8\\}}", F),
    ("1, 3, 5", "\\boxed{5, 3, 1}", T),
    ("\\frac{1}{2}, 2", "\\boxed{2, 0.5}", T),
    ("\\{0\\}", "\\boxed{\\{0\\}}", T),
    ("1, 2, 3", "\\boxed{1, 2}", F),
    ("x = 1, x = 2", "\\boxed{1, 2}", T),
    ("\\pm 2", "\\boxed{2, -2}", T),
])

add("interval", [
    ("[0, 1)", "\\boxed{[0,1)}", T),
    ("[0, 1)", "\\boxed{[0,1]}", F),
    ("(-\\infty, 2]", "\\boxed{(-\\infty,2]}", T),
    ("(-\\infty, 2]", "\\boxed{(-\\infty,2)}", F),
    ("[0,1]\\cup[2,3]", "\\boxed{[2,3]\\cup[0,1]}", T),
    ("(1, \\infty)", "\\boxed{(1,\\infty)}", T),
    ("[-2, 2]", "\\boxed{[-2,2]}", T),
    ("[-2, 2]", "\\boxed{(-2,2)}", F),
    ("(0, 5]", "\\boxed{(0,5]}", T),
    ("(0, 5]", "\\boxed{[0,5]}", F),
    ("(-\\infty, 0) \\cup (0, \\infty)", "\\boxed{(-\\infty,0)\\cup(0,\\infty)}", T),
    ("[\\frac{1}{2}, 3]", "\\boxed{[0.5, 3]}", T),
    ("x \\in [1, 4]", "\\boxed{[1,4]}", T),
    ("[1, 4]", "\\boxed{x \\in [1,4]}", T),
    ("[3, \\infty)", "\\boxed{[3,\\infty)}", T),
])

add("equation", [
    ("x=3", "\\boxed{3}", T),
    ("3", "\\boxed{x = 3}", T),
    ("y=2x+1", "\\boxed{2x+1}", T),
    ("x=3", "\\boxed{x=4}", F),
    ("x^2+y^2=1", "\\boxed{y^2+x^2=1}", T),
    ("x=3", "\\boxed{x=3}", T),
    ("y = 2x + 1", "\\boxed{y=2x+1}", T),
    ("y = 2x + 1", "\\boxed{y=2x-1}", F),
    ("k=5", "The answer is $k = 5$.", T),
    ("a = -2", "\\boxed{-2}", T),
    ("x=\\frac{1}{2}", "\\boxed{x=0.5}", T),
    ("x+y=5", "\\boxed{y+x=5}", T),
    ("x+y=5", "\\boxed{x-y=5}", F),
    ("t = 4", "\\boxed{t=4}", T),
    ("n = 10", "\\boxed{n = 11}", F),
])

add("text", [
    ("\\text{yes}", "\\boxed{\\text{yes}}", T),
    ("\\text{yes}", "\\boxed{\\text{Yes}}", T),
    ("\\text{blue}", "\\boxed{\\text{Blue}}", T),
    ("\\text{no}", "\\boxed{\\text{yes}}", F),
    ("\\text{odd}", "\\boxed{\\text{even}}", F),
    ("\\text{John}", "\\boxed{\\text{john}}", T),
    ("\\text{Tuesday}", "\\boxed{\\text{Tuesday}}", T),
    ("\\text{Tuesday}", "\\boxed{\\text{Wednesday}}", F),
    ("\\text{yes}", "The answer is yes.", T),
    ("\\text{no}", "\\boxed{\\text{No}}", T),
    ("\\text{circle}", "\\boxed{\\text{Circle}}", T),
    ("\\text{circle}", "\\boxed{\\text{ellipse}}", F),
    ("\\text{(C) Even}", "\\boxed{\\text{(C) Even}}", T),
    ("\\text{Alice}", "\\boxed{\\text{Bob}}", F),
])

add("boxed", [
    ("\\frac{1}{2}", "\\boxed{\\frac{1}{2}}", T),
    ("3", "\\boxed{\\boxed{3}}", T),
    ("5", "First \\boxed{3}, but wait, correcting: \\boxed{5}", T),
    ("3", "First \\boxed{3}, but wait, correcting: \\boxed{5}", F),
    ("7", "\\fbox{7}", T),
    ("\\{1, 2\\}", "\\boxed{\\{1,2\\}}", T),
    ("(\\frac{1}{2}, 3)", "\\boxed{\\left(\\frac{1}{2}, 3\\right)}", T),
    ("\\frac{\\sqrt{3}}{2}", "\\boxed{\\frac{\\sqrt{3}}{2}}", T),
    ("12", "$\\boxed{12}$", T),
    ("12", "\\[\n\\boxed{12}\n\\]", T),
    ("x^{2}", "\\boxed{x^{2}}", T),
    ("\\frac{a^{2}}{b^{3}}", "\\boxed{\\frac{a^{2}}{b^{3}}}", T),
    ("2", "\\boxed{\\dfrac{\\sqrt{16}}{2}}", T),
    ("10", "**Final Answer**\n\\[\n\\boxed{10}\n\\]", T),
    ("10", "**Final Answer**\n\\[\n\\boxed{11}\n\\]", F),
])

add("answer_tag", [
    ("3", "<answer>\\boxed{3}</answer>", T),
    ("3", "<answer>3</answer>", T),
    ("3", "<think>We compute 1+2.</think><answer>3</answer>", T),
    ("3", "<answer>The answer is 3</answer>", T),
    ("3", "<answer>\\boxed{4}</answer>", F),
    ("\\frac{1}{2}", "<answer>$\\frac{1}{2}$</answer>", T),
    ("B", "<answer>\\boxed{B}</answer>", T),
    ("5", "<think>\\boxed{5}</think>\n<answer>\\boxed{5}</answer>", T),
    ("12", "<answer>\\boxed{12} apples</answer>", T),
    ("12", "<answer>13</answer>", F),
])

add("answer_is", [
    ("42", "The answer is 42.", T),
    ("\\frac{1}{2}", "The final answer is $\\frac{1}{2}$.", T),
    ("7", "Final Answer: 7", T),
    ("12", "the answer is: 12 apples", T),
    ("3", "Thus the answer is 3, since the others fail.", T),
    ("3", "Thus the answer is 4, since the others fail.", F),
    ("9", "Final answer: $\\boxed{9}$", T),
    ("9", "So the answer would be 9.", T),
    ("2", "The final answer is $2$. I hope it is correct.", T),
    ("2", "The final answer is $3$. I hope it is correct.", F),
    ("64", "**Answer:** 64", T),
    ("64", "Answer: $8^2$", T),
    ("5", "We try 3 and 4 first.\nThe answer is 5.", T),
    ("5", "The answer is 6.\nHmm, I made a mistake.", F),
    ("8", "The answer should be 8.", T),
])

add("think", [
    ("3", "<think>\\boxed{5} maybe.</think>\nThe answer is \\boxed{3}", T),
    ("5", "<think>\\boxed{5} maybe.</think>\nThe answer is \\boxed{3}", F),
    ("3", "<think>I think 5.</think>\n\n**Final answer:** 3", T),
    ("3", THINK + "\\boxed{3}", T),
    ("3", THINK + "\\boxed{4}", F),
    ("10", THINK + "So the answer is 10.", T),
    ("10", "<think>Let me check: 10 is too big, so 9.</think>\nThe answer is 9.", F),
    ("9", "<think>Let me check: 10 is too big, so 9.</think>\nThe answer is 9.", T),
    ("\\frac{1}{4}", THINK + "The probability is $\\boxed{\\frac{1}{4}}$.", T),
    ("6", "<think>first\n</think>\n<think>second</think>\n\\boxed{6}", T),
    ("6", "<think>compute 2*3 = \\boxed{6}</think>", T),
    ("2", "<think>so \\boxed{2}</think>I'm not sure.", F),
    ("12", THINK + "12", T),
    ("12", THINK + "$12$", T),
    ("-1", THINK + "\\boxed{-1}", T),
])

add("truncated", [
    ("21", "<think>Let me compute 3+4 = 7. Then multiply by", F),
    ("7", "<think>Let me compute 3+4 = 7. Then multiply by", F),
    ("5", "", F),
    ("5", "   ", F),
    ("5", "<think>We need to find the number of ways. Consider the first", F),
    ("20", "<think>The area is 12 square units, so the perimeter", F),
    ("12", "We have \\boxed{12", F),
    ("3", "<think>", F),
    ("6", "<think>so far we have 3", F),
    ("100", "The answer is", F),
    ("100", "<answer>", F),
    ("4", "<think>2+2", F),
    ("\\frac{1}{2}", "<think>The probability is \\frac{1}{2} because", F),
    ("8", "<think>Let me think.\nStep 1: 2^3 = 8.\nStep 2:", F),
    ("9", "Let me think about this problem carefully. We first", F),
])

add("negative", [
    ("-5", "\\boxed{-5}", T),
    ("-5", "\\boxed{−5}", T),
    ("-5", "\\boxed{5}", F),
    ("-\\frac{1}{2}", "\\boxed{-0.5}", T),
    ("-3", "\\boxed{- 3}", T),
    ("-3", "The answer is $-3$.", T),
    ("-2.5", "\\boxed{-\\frac{5}{2}}", T),
    ("-10", "\\boxed{(-10)}", T),
    ("-1", "\\boxed{1}", F),
    ("-7", "x = -7", T),
])

add("scientific", [
    ("1.5\\times10^{3}", "\\boxed{1500}", T),
    ("3 \\times 10^8", "\\boxed{300000000}", T),
    ("6.02\\times10^{23}", "\\boxed{6.02 \\times 10^{23}}", T),
    ("1.6\\cdot 10^{-19}", "\\boxed{1.6\\times10^{-19}}", T),
    ("2\\times10^3", "\\boxed{2\\times10^4}", F),
    ("5 \\times 10^{-3}", "\\boxed{0.005}", T),
    ("1.2 \\times 10^{5}", "\\boxed{120000}", T),
    ("1.2 \\times 10^{5}", "\\boxed{12000}", F),
    ("6.02\\times10^{23}", "\\boxed{6.02e23}", T),
    ("2.5\\times10^{-4}", "\\boxed{2.5E-4}", T),
])

add("time", [
    ("4:05", "\\boxed{4:05}", T),
    ("4:05", "\\boxed{4:50}", F),
    ("10:30", "The train leaves at \\boxed{10:30}.", T),
    ("12:00", "\\boxed{12:00}", T),
    ("7:45", "\\boxed{7:54}", F),
])

add("misc", [
    ("\\infty", "\\boxed{\\infty}", T),
    ("0", "\\boxed{\\frac{0}{5}}", T),
    ("1", "\\boxed{\\frac{2}{2}}", T),
    ("\\frac{1}{2}", "\\boxed{\\frac{1}{2}.}", T),
    ("6", "$$6$$", T),
    ("6", "\\(6\\)", T),
    ("\\frac{3}{2}", "\\boxed{1.5}", T),
    ("0.5", "\\boxed{\\frac{2}{4}}", T),
    ("24", "\\boxed{4!}", T),
    ("8", "\\boxed{2^3}", T),
    ("8", "\\boxed{3^2}", F),
    ("|x|", "\\boxed{|x|}", T),
    ("5", "\\boxed{\\left|-5\\right|}", T),
    ("\\$5", "\\boxed{5}", T),
    ("5", "\\boxed{ 5 }", T),
])


add("gold_solution", [
    ("We have $2 + 3 = 5$, so the answer is $\\boxed{5}$.", "\\boxed{5}", T),
    ("We have $2 + 3 = 5$, so the answer is $\\boxed{5}$.", "\\boxed{6}", F),
    ("The roots are $1$ and $2$, so the sum is $\\boxed{3}$.", "The answer is 3.", T),
    ("Simplifying, $\\frac{6}{8} = \\boxed{\\frac{3}{4}}$.", "\\boxed{0.75}", T),
    ("Simplifying, $\\frac{6}{8} = \\boxed{\\frac{3}{4}}$.", "\\boxed{\\frac{6}{8}}", T),
    ("Simplifying, $\\frac{6}{8} = \\boxed{\\frac{3}{4}}$.", "\\boxed{\\frac{4}{3}}", F),
    ("Natalia sold 48/2 = 24 clips in May.\nAltogether she sold 48+24 = 72 clips.\n#### 72", "\\boxed{72}", T),
    ("Natalia sold 48/2 = 24 clips in May.\nAltogether she sold 48+24 = 72 clips.\n#### 72", "The answer is 24.", F),
    ("Weng earns 12/60 = $0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $10.\n#### 10", "\\boxed{10}", T),
    ("Weng earns 12/60 = $0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $10.\n#### 10", "\\boxed{\\$10}", T),
    ("The distance is $\\sqrt{3^2+4^2} = \\boxed{5}$ units.", "\\boxed{5}", T),
    ("The vertex is at $\\boxed{(1, -2)}$.", "\\boxed{(1,-2)}", T),
    ("The vertex is at $\\boxed{(1, -2)}$.", "\\boxed{(-2,1)}", F),
    ("Thus $x \\in \\boxed{[2, 5)}$.", "\\boxed{[2,5)}", T),
    ("The probability is $\\boxed{\\dfrac{1}{6}}$.", "The final answer is $\\frac16$.", T),
    ("Factoring, we get $\\boxed{(x-3)(x+3)}$.", "\\boxed{x^2-9}", T),
    ("Each side is 7 cm, so the perimeter is $\\boxed{28}$ cm.", "\\boxed{28\\text{ cm}}", T),
    ("The solutions are $x = \\boxed{2, -2}$.", "\\boxed{-2, 2}", T),
])


def mv_parse_args(category: str):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig

    if category == "choice":
        return {"extraction_config": [StringExtractionConfig(strings=("A", "B", "C", "D", "E")),
                                      LatexExtractionConfig(), ExprExtractionConfig()]}
    return {}


def gold_for_math_verify(gold: str) -> str:
    markers = ("\\boxed", "answer is", "####", "</think>", "\\(", "\\[")
    has_math_dollar = re.search(r"(?<!\\)\$", gold) is not None  # `\$` is a currency sign
    if has_math_dollar or any(m in gold for m in markers):
        return gold
    return "\\boxed{" + gold + "}"


def main() -> None:
    ensure_venv()
    from math_verify import parse, verify

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "verify", "cases.jsonl"))
    args = ap.parse_args()

    counters: dict[str, int] = {}
    lines = []
    agree = 0
    for case in CASES:
        category, gold, pred, expected = case[:4]
        question = case[4] if len(case) > 4 else None
        counters[category] = counters.get(category, 0) + 1
        cid = f"{category}-{counters[category]:03d}"
        kw = mv_parse_args(category)
        try:
            gp = parse(gold_for_math_verify(gold), **kw)
            pp = parse(pred, **kw)
            mv = bool(verify(gp, pp))
        except Exception:  # math-verify raising counts as "not equal"
            mv = False
        agree += mv == expected
        rec = {"id": cid, "category": category, "gold": gold, "prediction": pred,
               "expected": expected, "math_verify": mv}
        if question is not None:
            rec["question"] = question
        lines.append(json.dumps(rec, ensure_ascii=False, sort_keys=False))

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} cases -> {args.out}; math-verify matches the hand label on {agree}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
