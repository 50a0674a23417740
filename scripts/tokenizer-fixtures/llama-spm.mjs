// Expected SentencePiece ids for the Llama vocab from npm's llama-tokenizer-js (an independent
// JavaScript implementation with its own copy of the Llama vocab), written as a fixture.
// Usage: node llama-spm.mjs VOCAB_TOKENS_JSON TEXTS_JSON OUT_JSON
//   VOCAB_TOKENS_JSON: the token texts of the GGUF vocab (from dump-tokens.py), to prove
//   that llama-tokenizer-js holds the same 32000 tokens as the file the tests read.
import fs from 'node:fs'
import llamaTokenizer from 'llama-tokenizer-js'

const [tokensPath, textsPath, outPath] = process.argv.slice(2)
const ggufTokens = JSON.parse(fs.readFileSync(tokensPath, 'utf8'))
const texts = JSON.parse(fs.readFileSync(textsPath, 'utf8'))

if (ggufTokens.length !== llamaTokenizer.vocabById.length) {
  throw new Error(`vocab sizes differ: gguf ${ggufTokens.length}, llama-tokenizer-js ${llamaTokenizer.vocabById.length}`)
}
for (let i = 0; i < ggufTokens.length; i++) {
  if (ggufTokens[i] !== llamaTokenizer.vocabById[i]) {
    throw new Error(`token ${i} differs: gguf ${JSON.stringify(ggufTokens[i])}, js ${JSON.stringify(llamaTokenizer.vocabById[i])}`)
  }
}

// llama-tokenizer-js prepends one space and never looks for special tokens in the text. For
// texts with <s>, </s>, <unk> written in them, the text is cut around those (as llama.cpp
// does with special-token parsing on), each text piece encoded alone with the leading space
// (llama.cpp gives every piece that starts the text or follows a special token the prefix
// space), and the special ids put between.
const SPECIAL = [['<unk>', 0], ['</s>', 2], ['<s>', 1]]
function encodeWithSpecials(text) {
  let frags = [text]
  for (const [s, id] of SPECIAL) {
    const next = []
    for (const f of frags) {
      if (typeof f !== 'string') { next.push(f); continue }
      const parts = f.split(s)
      parts.forEach((p, i) => {
        if (i > 0) next.push(id)
        if (p.length > 0) next.push(p)
      })
    }
    frags = next
  }
  const ids = []
  for (const f of frags) {
    if (typeof f === 'string') ids.push(...llamaTokenizer.encode(f, false, true))
    else ids.push(f)
  }
  return ids
}

const out = { source: 'npm llama-tokenizer-js@1.2.2 (encode(text, add_bos=false, add_preceding_space=true))', cases: [] }
for (const { name, text } of texts.common) {
  out.cases.push({ name, text, parse_special: true, ids: llamaTokenizer.encode(text, false, true) })
}
for (const { name, text } of texts.spm_special) {
  out.cases.push({ name, text, parse_special: true, ids: encodeWithSpecials(text) })
  // Without special-token parsing the markup is plain text.
  out.cases.push({ name: name + '-unparsed', text, parse_special: false, ids: llamaTokenizer.encode(text, false, true) })
}
fs.writeFileSync(outPath, JSON.stringify(out, null, 1) + '\n')
console.error(`llama-spm.mjs: ${out.cases.length} cases -> ${outPath}`)
