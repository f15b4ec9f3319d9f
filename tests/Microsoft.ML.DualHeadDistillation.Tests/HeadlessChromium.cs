using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Microsoft.ML.DualHeadDistillation.Tests;

/// <summary>
/// Opens a page in Debian's headless Chromium through the DevTools protocol (a WebSocket): waits for the load event,
/// counts the images and those that loaded, collects console errors and uncaught exceptions, and takes a full-page screenshot.
/// </summary>
internal static class HeadlessChromium
{
    public sealed record PageReport(int Images, int LoadedImages, IReadOnlyList<string> Errors, byte[] Screenshot);

    public static PageReport Open(string file, TimeSpan timeout)
    {
        string profile = Directory.CreateTempSubdirectory("dualhead-chromium-").FullName;
        var start = new ProcessStartInfo("chromium") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0", $"--user-data-dir={profile}", "--window-size=1100,1400", "about:blank" })
            start.ArgumentList.Add(a);
        using var chromium = Process.Start(start)!;
        chromium.ErrorDataReceived += (_, _) => { };
        chromium.OutputDataReceived += (_, _) => { };
        chromium.BeginErrorReadLine();
        chromium.BeginOutputReadLine();
        try
        {
            var watch = Stopwatch.StartNew();
            string portFile = Path.Combine(profile, "DevToolsActivePort");
            while (!File.Exists(portFile) || File.ReadAllLines(portFile).Length < 2)
            {
                if (watch.Elapsed > timeout || chromium.HasExited) throw new InvalidOperationException($"Chromium did not start its DevTools endpoint (exited: {chromium.HasExited}).");
                Thread.Sleep(100);
            }
            int port = int.Parse(File.ReadAllLines(portFile)[0]);
            using var http = new HttpClient();
            var targets = JsonNode.Parse(http.GetStringAsync($"http://127.0.0.1:{port}/json/list").Result)!.AsArray();
            string socketUrl = targets.First(t => t!["type"]!.GetValue<string>() == "page")!["webSocketDebuggerUrl"]!.GetValue<string>();
            using var socket = new ClientWebSocket();
            if (!socket.ConnectAsync(new Uri(socketUrl), CancellationToken.None).Wait(timeout)) throw new TimeoutException("Could not connect to Chromium's DevTools socket.");
            var session = new Session(socket, timeout);
            session.Call("Runtime.enable");
            session.Call("Log.enable");
            session.Call("Page.enable");
            session.Call("Page.navigate", new JsonObject { ["url"] = new Uri(Path.GetFullPath(file)).AbsoluteUri });
            session.WaitFor("Page.loadEventFired");
            var counts = session.Call("Runtime.evaluate", new JsonObject
            {
                ["expression"] = "JSON.stringify({ n: document.images.length, ok: Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length })",
                ["returnByValue"] = true,
            })["result"]!["value"]!.GetValue<string>();
            var parsed = JsonNode.Parse(counts)!;
            var shot = session.Call("Page.captureScreenshot", new JsonObject { ["format"] = "png", ["captureBeyondViewport"] = true })["data"]!.GetValue<string>();
            return new PageReport(parsed["n"]!.GetValue<int>(), parsed["ok"]!.GetValue<int>(), session.Errors, Convert.FromBase64String(shot));
        }
        finally
        {
            if (!chromium.HasExited) chromium.Kill(entireProcessTree: true);
            chromium.WaitForExit(10_000);
            try { Directory.Delete(profile, recursive: true); } catch (IOException) { }
        }
    }

    private sealed class Session(ClientWebSocket socket, TimeSpan timeout)
    {
        private int _id;
        private readonly List<string> _errors = [];
        private readonly HashSet<string> _events = [];
        public IReadOnlyList<string> Errors => _errors;

        public JsonNode Call(string method, JsonObject? parameters = null)
        {
            int id = ++_id;
            var message = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters ?? new JsonObject() };
            if (!socket.SendAsync(Encoding.UTF8.GetBytes(message.ToJsonString()), WebSocketMessageType.Text, true, CancellationToken.None).Wait(timeout))
                throw new TimeoutException($"Chromium did not take {method} in time.");
            while (true)
            {
                var reply = Receive();
                if (reply["id"]?.GetValue<int>() == id)
                    return reply["error"] is { } error ? throw new InvalidOperationException($"{method}: {error.ToJsonString()}") : reply["result"]!;
            }
        }

        public void WaitFor(string eventName)
        {
            while (!_events.Contains(eventName)) Receive();
        }

        private JsonNode Receive()
        {
            var buffer = new byte[1 << 20];
            using var stream = new MemoryStream();
            WebSocketReceiveResult result;
            do
            {
                var task = socket.ReceiveAsync(buffer, CancellationToken.None);
                if (!task.Wait(timeout)) throw new TimeoutException("Chromium did not answer in time.");
                result = task.Result;
                stream.Write(buffer, 0, result.Count);
            } while (!result.EndOfMessage);
            var node = JsonNode.Parse(stream.ToArray())!;
            if (node["method"]?.GetValue<string>() is { } method)
            {
                _events.Add(method);
                var p = node["params"];
                if (method == "Runtime.exceptionThrown") _errors.Add("exception: " + p!["exceptionDetails"]!.ToJsonString());
                else if (method == "Runtime.consoleAPICalled" && p!["type"]!.GetValue<string>() is "error" or "assert") _errors.Add("console: " + p["args"]!.ToJsonString());
                else if (method == "Log.entryAdded" && p!["entry"]!["level"]!.GetValue<string>() == "error") _errors.Add("log: " + p["entry"]!["text"]!.GetValue<string>());
            }
            return node;
        }
    }
}
