// `hearth chat` end to end: through a pipe and through a pseudo-terminal (python3's pty module),
// several turns, reset, help, quit, Ctrl-C during a reply and at the prompt.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "e2e/hearth_run.h"

namespace hearth::e2e {
namespace {

struct TurnStats {
  long prefill = 0, generated = 0, cache = 0;
  std::string finish;
};

// The "[prefill: ... | cache: ... | finish: ...]" lines --verbose True prints after each reply.
std::vector<TurnStats> turn_stats(const std::string& out) {
  static const std::regex line(
      R"(\[prefill: (\d+) tokens, [^|]*\| generation: (\d+) tokens, [^|]*\| cache: (\d+) tokens \| finish: (\w+)\])");
  std::vector<TurnStats> stats;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), line); it != std::sregex_iterator();
       ++it)
    stats.push_back({std::stol((*it)[1]), std::stol((*it)[2]), std::stol((*it)[3]), (*it)[4]});
  return stats;
}

TEST(Chat, PipeTurnsResetHelpAndQuit) {
  RunResult r = run_hearth("chat --max-tokens 8 --verbose True",
                           "Hello there\nHello there\n\nh\nr\nHello there\nq\nnever read\n");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("[INFO] Starting chat session with"), std::string::npos) << r.out;
  // The help at the start and after 'h'.
  size_t first_help = r.out.find("- 'r' to reset the chat");
  ASSERT_NE(first_help, std::string::npos);
  EXPECT_NE(r.out.find("- 'r' to reset the chat", first_help + 1), std::string::npos) << r.out;
  std::vector<TurnStats> s = turn_stats(r.out);
  ASSERT_EQ(s.size(), 3u) << r.out;
  // Turn 2 prefills only its own text plus the reply's last token, which hearth feeds one step
  // later than mlx-lm: the same message after a reset (turn 3) prefills exactly as turn 1.
  EXPECT_EQ(s[1].prefill, s[0].prefill + 1);
  EXPECT_EQ(s[2].prefill, s[0].prefill);
  EXPECT_EQ(s[0].cache, s[0].prefill + s[0].generated);
  EXPECT_EQ(s[1].cache, s[0].cache + (s[1].prefill - 1) + s[1].generated);
  EXPECT_EQ(s[2].cache, s[0].cache);
  // 'q' ends the session: the line after it is never read as a message.
  EXPECT_EQ(r.out.find("never read"), std::string::npos);

  // The first reply is what generate gives for the same message with the chat template.
  RunResult g = run_hearth("generate --prompt 'Hello there' --max-tokens 8 --verbose False");
  ASSERT_EQ(g.status, 0) << g.err;
  EXPECT_NE(r.out.find(">> " + g.out), std::string::npos) << r.out << "\n---\n" << g.out;
}

TEST(Chat, EndOfInputExitsCleanly) {
  RunResult r = run_hearth("chat --max-tokens 4", "Hi\n");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
}

TEST(Chat, SystemPromptFromAFile) {
  ScratchDir dir("chat-system");
  std::ofstream(dir / "system.txt") << "\n  You are terse.  \n";
  RunResult r =
      run_hearth("chat --max-tokens 4 --verbose True --system-prompt " + quote(dir / "system.txt"),
                 "Hi\nHi\n");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("System prompt loaded from"), std::string::npos) << r.out;
  std::vector<TurnStats> s = turn_stats(r.out);
  ASSERT_EQ(s.size(), 2u) << r.out;
  // The system message goes with the first turn only.
  EXPECT_GT(s[0].prefill, s[1].prefill - 1);
}

// Drives `hearth chat` in a pseudo-terminal as a user would: the child gets the pty as its
// controlling terminal, so Ctrl-C (\x03) reaches it as SIGINT from the line discipline.
const char* kPtyDriver = R"PY(
import json, os, pty, select, sys, time
argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out = b""
def wait_for(pattern, count=1, timeout=120):
    global out
    end = time.time() + timeout
    while out.count(pattern) < count:
        left = end - time.time()
        if left <= 0:
            raise SystemExit("timed out waiting for %r; got %r" % (pattern, out))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise SystemExit("hearth exited early: %r" % out)
            out += chunk
def send(text):
    os.write(fd, text.encode())
wait_for(b">> ", 1)
send("Hello there\n")
wait_for(b"finish:", 1)
wait_for(b">> ", 2)
send("Tell me a long story about the sea\n")
# Interrupt once the reply has started streaming.
wait_for(b"Tell me a long story about the sea", 1)
mark = len(out)
while len(out) < mark + 40:
    r, _, _ = select.select([fd], [], [], 60)
    if not r:
        raise SystemExit("the reply did not stream: %r" % out)
    out += os.read(fd, 4096)
send("\x03")
wait_for(b"finish:", 2)
wait_for(b">> ", 3)
send("h\n")
wait_for(b">> ", 4)
send("r\n")
wait_for(b">> ", 5)
send("Hello there\n")
wait_for(b"finish:", 3)
wait_for(b">> ", 6)
send("\x03")  # at the prompt: ends the session
# hearth must exit by itself; a hang fails the test instead of blocking the suite.
end = time.time() + 60
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    if time.time() > end:
        os.kill(pid, 9)
        raise SystemExit("hearth did not exit after Ctrl-C at the prompt: %r" % out)
    time.sleep(0.05)
try:
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        out += chunk
except OSError:
    pass
print(json.dumps({"exit": os.waitstatus_to_exitcode(status), "out": out.decode("utf-8", "replace")}))
)PY";

TEST(Chat, PseudoTerminalTurnsInterruptResetAndCtrlCExit) {
  RunResult r =
      run_python(kPtyDriver, std::string(HEARTH_BINARY) + " chat --max-tokens 600 --verbose True");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  std::string out = j["out"];
  EXPECT_EQ(j["exit"], 0) << out;
  std::vector<TurnStats> s = turn_stats(out);
  ASSERT_EQ(s.size(), 3u) << out;
  EXPECT_EQ(s[1].finish, "interrupted") << out;
  EXPECT_LT(s[1].generated, 600);
  // The interrupted turn still kept the conversation: the turn after a reset starts afresh.
  EXPECT_EQ(s[2].prefill, s[0].prefill);
  EXPECT_EQ(s[2].cache, s[0].cache);
  EXPECT_NE(out.find("- 'h' to display these commands"), std::string::npos);
}

}  // namespace
}  // namespace hearth::e2e
