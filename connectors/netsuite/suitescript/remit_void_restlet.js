/**
 * remit's void RESTlet: voids a vendor payment (bill payment) with N/transaction.void.
 *
 * SuiteTalk REST web services have no void action, so remit calls this RESTlet:
 *
 *   POST https://<account>.restlets.api.netsuite.com/app/site/hosting/restlet.nl
 *        ?script=customscript_remit_void&deploy=customdeploy_remit_void
 *   {"type": "vendorpayment", "id": "1234"}
 *
 * and answers
 *
 *   {"id": "<voided record id, or the voiding journal's id>", "voided": true,
 *    "alreadyVoided": false, "voidingJournal": "<journal id>" | null}
 *
 * With the accounting preference Void Transactions Using Reversing Journals (REVERSALVOIDING)
 * on, NetSuite keeps the payment's lines, sets its status to Voided and posts a reversing
 * journal (transaction.void returns the journal's id); off, it voids directly and zeroes the
 * payment. The payment is read first: one already voided is answered as such and left alone,
 * so remit may call again after a lost answer. Uncaught errors reach remit as NetSuite's
 * RESTlet error body {"error": {"code", "message"}} with HTTP 400.
 *
 * Deploy: upload to the File Cabinet (SuiteScripts/remit/), create a RESTlet script record with
 * ID _remit_void and a deployment with ID _remit_void (status Released), audience: the role of
 * remit's integration (it needs the Bill Payments permission at Full, and the M2M mapping the
 * "restlets" scope).
 *
 * @NApiVersion 2.1
 * @NScriptType Restlet
 * @NModuleScope SameAccount
 */
define(['N/error', 'N/search', 'N/transaction'], (error, search, transaction) => {
  const VOIDABLE = { vendorpayment: transaction.Type.VENDOR_PAYMENT };

  const isVoided = (type, id) => {
    const found = search.lookupFields({ type, id, columns: ['statusref', 'voided'] });
    const status = (found.statusref && found.statusref[0] && found.statusref[0].value) || '';
    return found.voided === true || found.voided === 'T' || status === 'voided';
  };

  const voidingJournal = (type, id) => {
    // The reversing journal of a void by reversing journal (none for a direct void).
    const found = search.lookupFields({ type, id, columns: ['voidjournal'] });
    const journal = found.voidjournal && found.voidjournal[0];
    return journal ? String(journal.value) : null;
  };

  const post = (body) => {
    const type = String((body && body.type) || '').toLowerCase();
    const id = String((body && body.id) || '');
    if (!type || !id) {
      throw error.create({
        name: 'SSS_MISSING_REQD_ARGUMENT',
        message: 'type and id are required',
        notifyOff: true,
      });
    }
    if (!VOIDABLE[type]) {
      throw error.create({
        name: 'INVALID_RCRD_TYPE',
        message: `remit voids only ${Object.keys(VOIDABLE).join(', ')}, not ${type}`,
        notifyOff: true,
      });
    }
    if (isVoided(type, id)) {
      return { id, voided: true, alreadyVoided: true, voidingJournal: voidingJournal(type, id) };
    }
    const result = String(transaction.void({ type: VOIDABLE[type], id }));
    const journal = result !== id ? result : null;
    return { id: result, voided: true, alreadyVoided: false, voidingJournal: journal };
  };

  return { post };
});
