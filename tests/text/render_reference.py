#!/usr/bin/python3
"""Reference renderer for hearth's chat template tests.

Renders Jinja templates with Python Jinja2 set up as transformers' apply_chat_template sets it up
(utils/chat_template_utils.py): ImmutableSandboxedEnvironment(trim_blocks=True,
lstrip_blocks=True) with the loopcontrols extension and a {% generation %} tag, tojson as
json.dumps(ensure_ascii=False, ...), raise_exception and strftime_now globals; chat cases also go
through apply_chat_template's checks and render_jinja_template's context and
continue_final_message handling (transformers 5.17).

Usage: render_reference.py CASES.json OUT.json
CASES is a list of objects, either
  {"template": str, "context": {...}}                                  (engine case), or
  {"template": str, "chat": {"messages": [...], "tools": ..., "documents": ...,
   "add_generation_prompt": bool, "continue_final_message": bool,
   "special_tokens": {...}, "kwargs": {...}}}                          (apply_chat_template case).
OUT gets one object per case: {"ok": true, "output": str} or
{"ok": false, "kind": "syntax" | "raised" | "runtime" | "chat", "error": str}.
"""
import copy
import json
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationTag(jinja2.ext.Extension):
    """transformers' {% generation %} block: renders its body through a caller (own scope)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        call = self.call_method("_body")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def make_environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


class ChatError(Exception):
    """A ValueError transformers raises around rendering (not from the template itself)."""


CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


def render_chat(env, source, chat):
    messages = chat["messages"]
    if isinstance(messages, list) and len(messages) == 0:
        raise ChatError("Cannot apply chat template to an empty conversation.")
    add_generation_prompt = chat.get("add_generation_prompt", False)
    continue_final_message = chat.get("continue_final_message", False)
    if continue_final_message and add_generation_prompt:
        raise ChatError("continue_final_message and add_generation_prompt are not compatible")
    kwargs = dict(chat.get("special_tokens") or {})
    kwargs.update(chat.get("kwargs") or {})
    final_message = None
    if continue_final_message:
        messages = copy.deepcopy(messages)
        final_message = messages[-1].get("content")
        if final_message is None:
            raise ChatError('final message has no "content" to continue')
        if "content" not in source:
            raise ChatError('"content" is not an accepted field in the chat_template')
        if isinstance(final_message, (list, tuple)):
            for block in reversed(final_message):
                if "text" in block:
                    final_message = block["text"]
                    block["text"] = block["text"] + CONTINUE_TAG
                    break
            else:
                raise ChatError("could not find any text to continue in the final message")
        else:
            messages[-1]["content"] = messages[-1]["content"] + CONTINUE_TAG
    template = env.from_string(source)
    rendered = template.render(messages=messages, tools=chat.get("tools"),
                               documents=chat.get("documents"),
                               add_generation_prompt=add_generation_prompt, **kwargs)
    if continue_final_message:
        if final_message.strip() not in rendered or CONTINUE_TAG.strip() not in rendered:
            raise ChatError("the final message does not appear in the rendered chat")
        at = rendered.rindex(CONTINUE_TAG.strip())
        if rendered[at:at + len(CONTINUE_TAG)] == CONTINUE_TAG:
            rendered = rendered[:at]
        else:
            rendered = rendered[:at].rstrip()
    return rendered


def render_case(env, case):
    try:
        if "chat" in case:
            output = render_chat(env, case["template"], case["chat"])
        else:
            output = env.from_string(case["template"]).render(**case.get("context", {}))
        return {"ok": True, "output": output}
    except ChatError as e:
        return {"ok": False, "kind": "chat", "error": str(e)}
    except jinja2.exceptions.TemplateSyntaxError as e:
        return {"ok": False, "kind": "syntax", "error": str(e), "line": e.lineno}
    except SyntaxError as e:  # Jinja's compiled Python rejected the template ('break' outside loop)
        return {"ok": False, "kind": "syntax", "error": str(e)}
    except jinja2.exceptions.TemplateError as e:
        kind = "raised" if type(e) is jinja2.exceptions.TemplateError else "runtime"
        return {"ok": False, "kind": kind, "error": str(e)}
    except Exception as e:  # TypeError, ValueError, ... raised while rendering
        return {"ok": False, "kind": "runtime", "error": f"{type(e).__name__}: {e}"}


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    env = make_environment()
    results = [render_case(env, case) for case in cases]
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=True)


if __name__ == "__main__":
    main()
