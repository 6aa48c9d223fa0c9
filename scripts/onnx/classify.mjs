// Classify texts with transformers.js on an exported classifier folder (its onnx/ files),
// offline: node scripts/onnx/classify.mjs FOLDER [--quantized] TEXT... -> one JSON line per
// text: {"text", "scores": [{"label", "score"}, ...]} with every label, best first.
import path from "node:path";
import { env, pipeline } from "@huggingface/transformers";

const args = process.argv.slice(2);
const quantized = args.includes("--quantized");
const [folder, ...texts] = args.filter((a) => a !== "--quantized");
if (!folder || texts.length === 0) {
  console.error("usage: node classify.mjs FOLDER [--quantized] TEXT...");
  process.exit(2);
}
env.allowRemoteModels = false;  // never fetch: the folder is all there is
env.allowLocalModels = true;
env.localModelPath = path.dirname(path.resolve(folder)) + path.sep;
const classify = await pipeline("text-classification", path.basename(path.resolve(folder)), {
  dtype: quantized ? "q8" : "fp32",
});
for (const text of texts) {
  const scores = await classify(text, { top_k: null });
  console.log(JSON.stringify({ text, scores }));
}
