// A minimal Probot app for the intake benchmark: verify the signature, route, ignore.
// Run by bench/intake.py from .cache/bench/probot (where `npm install probot` put node_modules).
// Env: PORT, WEBHOOK_SECRET, PRIVATE_KEY, TRIGGER_LABEL. Loopback only; it never calls GitHub.
import http from "node:http";
import { Probot, createNodeMiddleware } from "probot";

const trigger = process.env.TRIGGER_LABEL || "otto";
const probot = new Probot({
  appId: 1,
  privateKey: process.env.PRIVATE_KEY,
  secret: process.env.WEBHOOK_SECRET,
  baseUrl: "http://127.0.0.1:9", // never used: no handler calls the API
  logLevel: "warn",
});

const appFn = (app) => {
  app.on("issues.labeled", async (context) => {
    if (context.payload.label?.name !== trigger) return; // not the trigger label: ignored
    if (context.payload.sender?.type === "Bot") return;
  });
  app.on("issue_comment.created", async (context) => {
    const body = context.payload.comment?.body ?? "";
    if (!body.trimStart().startsWith("/otto")) return; // no command: ignored
  });
};

const middleware = await createNodeMiddleware(appFn, { probot, webhooksPath: "/webhooks" });
const server = http.createServer((req, res) => {
  middleware(req, res, () => {
    res.writeHead(404).end();
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), "127.0.0.1", () => console.log("probot ready"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
