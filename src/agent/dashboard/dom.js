// What both pages (the agent's, the mothership's overview) build their DOM
// with: elements whose children are text nodes only, so a name a peer or a
// laptop supplied is shown as its characters and never parsed as markup.
'use strict'

window.xoDom = (function () {
  /** An HTML element; props: class, text (textContent), any attribute. */
  function el (tag, props, ...children) {
    const e = document.createElement(tag)
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null) continue
      if (k === 'class') e.className = v
      else if (k === 'text') e.textContent = v
      else e.setAttribute(k, String(v))
    }
    for (const c of children) if (c !== undefined && c !== null) e.append(typeof c === 'string' ? document.createTextNode(c) : c)
    return e
  }

  /** An SVG element with attributes; string children become text nodes. */
  function svg (tag, attrs, ...children) {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag)
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v))
    for (const c of children) if (c !== undefined && c !== null) e.append(typeof c === 'string' ? document.createTextNode(c) : c)
    return e
  }

  return Object.freeze({ el, svg })
})()
